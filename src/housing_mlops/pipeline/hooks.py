"""Step hooks: code that runs after every step body without the runner naming it.

A hook is called with the step's context and its error line (None when the body finished),
while the step's MLflow run is still open. Plugins register a factory under the entry-point
group `housing_mlops.step_hooks` in pyproject.toml; the factory gets the resolved config and
returns a hook, or None to stay out of this run (so `wandb.mode: disabled` imports no wandb).
A hook never changes a step's outcome: whatever it raises becomes one warning.
"""

import logging
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from housing_mlops.config.schema import Config
from housing_mlops.pipeline.context import StepContext

log = logging.getLogger(__name__)

GROUP = "housing_mlops.step_hooks"

StepHook = Callable[[StepContext, str | None], None]
HookFactory = Callable[[Config], StepHook | None]


def load(cfg: Config) -> list[StepHook]:
    """The hooks the installed plugins enable for `cfg`, in entry-point name order."""
    hooks: list[StepHook] = []
    for point in sorted(entry_points(group=GROUP), key=lambda p: p.name):
        try:
            factory: HookFactory = point.load()
            hook = factory(cfg)
        except Exception as exc:
            log.warning(f"step hook '{point.name}' ({point.value}) not loaded: {type(exc).__name__}: {exc}")
            continue
        if hook is not None:
            hooks.append(hook)
    return hooks


def notify(hooks: Sequence[StepHook], ctx: StepContext, error: str | None) -> None:
    """Call every hook with the step's outcome; a failing hook is one warning, not a failed step."""
    for hook in hooks:
        try:
            hook(ctx, error)
        except Exception as exc:
            log.warning(f"step hook {getattr(hook, '__name__', hook)!r} failed: {type(exc).__name__}: {exc}")
