"""Following the champion alias while serving: what each poll of the registry decides. Pure.

The pipeline layer (pipeline/serve.py) reads the alias every `serving.poll_s`, loads and warms
a new version and swaps it into the middleware; this module holds the rules it follows (load or
not, swap or refuse, which line to log) and the state between two polls, so that every rule is
tested without a server. Each function returns the next state instead of changing one: the
follower keeps one `Watch` and replaces it.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

# A signature's inputs as MLflow's `Schema.to_dict()` gives them: one dict per column
# ({"name": ..., "type": ..., "required": ...}); None for a model logged without a signature.
Columns = Sequence[Mapping[str, Any]] | None
_NAMES_SHOWN = 5  # a one-line reason names this many columns, then counts the rest
_ERROR_CHARS = 200  # of an error's first line in a log line
_OS_ERROR = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")  # e.g. [Errno 111] Connection refused


class Action(Enum):
    """What a poll does after the registry answered."""

    KEEP = "keep"  # champion names the served version, a refused one, or is not set
    LOAD = "load"  # a version not tried yet: load it, warm it, check its inputs, then swap or refuse


@dataclass(frozen=True)
class Watch:
    """What the follower knows between two polls."""

    served: str  # the version answering requests
    seen: str | None  # what champion named at the last poll the registry answered (None: not set)
    seen_at: int = 0  # that poll's number (0: at start)
    polls: int = 0  # polls begun so far
    reachable: bool = True  # whether the last poll reached the registry
    refused: frozenset[str] = frozenset()  # versions whose inputs differ: never loaded again
    failed: frozenset[str] = frozenset()  # versions whose load failed and was logged (retried quietly)


def begin(watch: Watch) -> Watch:
    """The state as a new poll starts: the polls are numbered from 1."""
    return replace(watch, polls=watch.polls + 1)


def unreachable(watch: Watch, registry: str, error: str) -> tuple[Watch, str | None]:
    """The registry did not answer: keep serving; a warning only when it was reachable before."""
    line = None
    if watch.reachable:
        line = f"tracking server {registry} unreachable ({error}); serving v{watch.served} until it is back"
    return replace(watch, reachable=False), line


def answered(watch: Watch, registry: str, champion: str | None) -> tuple[Watch, Action, list[str]]:
    """The registry answered that champion names `champion` (None: not set): what to do, what to say."""
    lines = []
    if not watch.reachable:
        lines.append(f"tracking server {registry} is back; champion is {_named(champion)}")
    if champion is None and watch.seen is not None:
        lines.append(f"champion is not set in the registry; serving v{watch.served} until it is")
    after = replace(watch, reachable=True, seen=champion, seen_at=watch.polls)
    return after, next_action(watch.served, champion, watch.refused), lines


def next_action(served: str, champion: str | None, refused: frozenset[str]) -> Action:
    """LOAD a champion that is neither served nor refused; otherwise KEEP serving what is served."""
    if champion is None or champion == served or champion in refused:
        return Action.KEEP
    return Action.LOAD


def inputs_difference(served: Columns, candidate: Columns) -> str | None:
    """Why `candidate`'s inputs cannot replace `served`'s, in a few words; None when they are equal.

    Equal means the same columns, types, optionality and order: a client that scores with the
    served version must get the same answers format from the next one, or none of them.
    """
    if served is None and candidate is None:
        return None
    if served is None or candidate is None:
        which = "the served version" if candidate is None else "the new version"
        return f"only {which} has an input signature"
    old, new = _by_name(served), _by_name(candidate)
    if list(old.items()) == list(new.items()):
        return None
    parts = []
    if missing := [name for name in old if name not in new]:
        parts.append(f"missing {_few(missing)}")
    if added := [name for name in new if name not in old]:
        parts.append(f"added {_few(added)}")
    changed = [
        f"{name} {_kind(old[name])} -> {_kind(new[name])}" for name in old if name in new and old[name] != new[name]
    ]
    if changed:
        parts.append(f"changed {_few(changed)}")
    return "; ".join(parts) or "the same columns in another order"


def refused(watch: Watch, version: str, why: str) -> tuple[Watch, str]:
    """`version` may not replace the served one: remember it (never loaded again) and say why once."""
    line = f"champion v{version} not served, still serving v{watch.served}: {why}"
    return replace(watch, refused=watch.refused | {version}), line


def load_failed(watch: Watch, version: str, error: str) -> tuple[Watch, str | None]:
    """`version` could not be loaded (perhaps a passing fault): retried at the next poll, logged once."""
    if version in watch.failed:
        return watch, None
    line = f"champion v{version} could not be loaded, still serving v{watch.served} (retried every poll): {error}"
    return replace(watch, failed=watch.failed | {version}), line


def swapped(
    watch: Watch, version: str, previous_seen: str | None, previous_at: int, seconds: float
) -> tuple[Watch, str]:
    """`version` now answers requests: the one line that says from what, when and after how long.

    `previous_seen`/`previous_at`: what champion named at the poll before, and that poll's number,
    so the line shows that the swap came at the first poll that saw the move (poll numbers differ by 1)
    or after a fault in between.
    """
    line = (
        f"serving v{version} instead of v{watch.served}: champion was {_named(previous_seen)} at poll "
        f"{previous_at}{' (start)' if previous_at == 0 else ''} and v{version} at poll {watch.polls}; "
        f"swapped {seconds:.2f} s after that poll began"
    )
    return replace(watch, served=version, failed=watch.failed - {version}), line


def short_error(text: str) -> str:
    """The part of an error message a log line needs.

    The OS error of a failed connection if there is one (MLflow wraps it in a long URL and retry
    report), else the first line, cut at 200 characters.
    """
    if found := _OS_ERROR.search(text):
        return found.group(0).rstrip()
    first = text.strip().splitlines()[0] if text.strip() else "no message"
    return first[:_ERROR_CHARS]


def _by_name(columns: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Columns by name, in order; an unnamed (tensor) input by its position."""
    return {str(column.get("name", f"#{i}")): column for i, column in enumerate(columns)}


def _kind(column: Mapping[str, Any]) -> str:
    optional = "" if column.get("required", True) else " (optional)"
    return f"{column.get('type', '?')}{optional}"


def _few(items: list[str]) -> str:
    more = len(items) - _NAMES_SHOWN
    return ", ".join(items[:_NAMES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _named(version: str | None) -> str:
    return "not set" if version is None else f"v{version}"
