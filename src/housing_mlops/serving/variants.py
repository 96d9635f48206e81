"""The compiled variant of a fitted Pipeline: convert, check parity, or say in one line why not.

And the two variants profiled side by side, each loaded from its own file, so the faster is served.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import skops.io
from sklearn.pipeline import Pipeline

from housing_mlops.config.registry import ProfileConfig
from housing_mlops.config.serving import ServingConfig
from housing_mlops.registry import hardware
from housing_mlops.serving import parity
from housing_mlops.serving.compile import ConversionError, compile_pipeline
from housing_mlops.serving.runtime import CompiledModel

SKLEARN, ONNX = "sklearn", "onnx"


@dataclass(frozen=True)
class Compiled:
    """The ONNX graph when it converted and agrees with sklearn; else None and the reason."""

    onnx: bytes | None
    parity: parity.Parity | None
    reason: str


def compile_checked(model: Pipeline, train: pd.DataFrame, test: pd.DataFrame, cfg: ServingConfig) -> Compiled:
    """Compile `model` (thresholds aligned on `train`) and measure its parity on `test` and odd rows.

    `train` and `test` hold the raw feature columns only.
    """
    if not cfg.compile:
        return Compiled(None, None, "serving.compile is false")
    try:
        graph = compile_pipeline(model, cfg.opset, train).SerializeToString()
    except ConversionError as exc:
        return Compiled(None, None, str(exc))
    compiled = CompiledModel(graph, cfg.threads, cfg.chunk_rows)
    odd = parity.odd_rows(test, compiled.layout.numeric, compiled.layout.categorical)
    batches = {"the test set": test, "the odd rows": odd}
    batches |= {f"odd row {i} alone": odd.iloc[[i]] for i in range(len(odd))}
    batches["each test row alone"] = test
    measured = parity.check(model.predict, compiled.predict, batches, cfg.max_rel_error, alone=("each test row alone",))
    if not measured.passed:
        return Compiled(None, measured, f"parity failed: {measured.reason}")
    return Compiled(graph, measured, measured.reason)


def profile_variants(
    model: Pipeline,
    compiled: Compiled,
    rows: pd.DataFrame,
    threads: list[int],
    folder: Path,
    profile: ProfileConfig,
    chunk_rows: int,
) -> tuple[dict[str, dict[str, Any]], str, list[str]]:
    """Each variant's load-robust profile (loaded from its own file in `folder`), and the one to serve.

    Also the types the sklearn variant's skops file holds beyond skops' defaults: what its loader
    trusts, and what the logged model's must.

    The variants are called on raw frames. Every variant is profiled at 1 thread, which is what the
    served one is chosen on (`fastest`); only the served one then at the other counts of `threads`.
    The other's multi-thread figures chose nothing and cost most under load: beside two CPU
    burners, HistGradientBoosting's single-row calls on an OpenMP pool of every core took 232 s of
    a 395 s register step.
    """
    skops_file = folder / "model.skops"
    skops.io.dump(model, skops_file)
    trusted = skops.io.get_untrusted_types(file=skops_file)
    loaders: dict[str, tuple[Callable[[int], hardware.Predictor], Path]] = {
        SKLEARN: (lambda n: hardware.ThreadLimited(skops.io.load(skops_file, trusted=trusted), n), skops_file)
    }
    if compiled.onnx is not None:
        graph = folder / "model.onnx"
        graph.write_bytes(compiled.onnx)
        loaders[ONNX] = (lambda n: CompiledModel(graph.read_bytes(), n, chunk_rows), graph)
    profiles = {name: hardware.profile_variant(load, rows, [1], at, profile) for name, (load, at) in loaders.items()}
    served = fastest(profiles)
    load, at = loaders[served]
    profiles[served] = hardware.profile_variant(load, rows, threads, at, profile, profiles[served])
    return profiles, served, trusted


def fastest(profiles: dict[str, dict[str, Any]]) -> str:
    """The variant to serve: the lowest 1-thread single-row p95 CPU time."""
    return min(profiles, key=lambda variant: profiles[variant]["cpu_p95_ms"])
