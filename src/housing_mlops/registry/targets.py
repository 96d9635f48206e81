"""Hardware targets: latency and cost per million predictions on each, and the cheapest meeting the SLO.

Cost (`cost_table`, `recommend`): from the 1-thread CPU figures, a call of b rows costs
`call_ms + b * row_ms`, where `row_ms` is the per-row CPU time at the largest batch and
`call_ms` the single-row p95 less one row. A target measured here uses them as they are; any
other is estimated through its `deployment.estimates` entry (speed-ups and a per-call overhead).
An instance serves one call at a time at that p95 service time (capacity planned at the tail);
instances = max(1, ceil(rows per second / rows per second per instance)); the cost per million
predictions is the hourly cost of those instances over the predictions of an hour.

Outputs for the registered version: `metadata` (MLmodel `hardware` entry), `tags` (flat
`hardware.*`), `metrics` (a fixed set of run metrics) and `card_section` (Markdown).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from housing_mlops.config.registry import TARGETS, DeploymentConfig, WorkloadConfig


@dataclass(frozen=True)
class TargetCost:
    """One target at the workload: latency, capacity, instances and cost, and how they were obtained."""

    target: str
    basis: str  # measured | estimated
    assumption: str
    p95_ms: float  # one request of workload.batch_size rows
    rows_per_s: float  # per instance
    instances: int
    usd_per_hour: float
    usd_per_million: float
    meets_slo: bool
    eligible: bool
    note: str


@dataclass(frozen=True)
class Recommendation:
    """The recommended target and why, in one line naming the figures."""

    target: str
    rationale: str


def has_amx(host: Mapping[str, Any]) -> bool:
    """Whether the host's ISA flags include AMX."""
    return any(flag.startswith("amx") for flag in host["isa"])


def _service_ms(profile: Mapping[str, Any]) -> tuple[float, float]:
    """(call_ms, row_ms): the measured 1-thread CPU time per call and per row."""
    batches = profile["threads"]["1"]["batches"]
    largest = max(batches, key=int)
    row_ms = batches[largest]["cpu_ms"] / int(largest)
    return max(profile["cpu_p95_ms"] - row_ms, 0.0), row_ms


def cost_table(profile: Mapping[str, Any], host: Mapping[str, Any], deployment: DeploymentConfig) -> list[TargetCost]:
    """Every target's p95 latency, instances and cost per million predictions at `deployment.workload`."""
    workload, edge = deployment.workload, deployment.edge
    call_ms, row_ms = _service_ms(profile)
    rate = workload.requests_per_s * workload.batch_size  # rows per second
    measured = {"cpu"} | ({"cpu-amx"} if has_amx(host) else set())
    fits_edge = profile["size_mb"] <= edge.max_size_mb and profile["rss_mb"] <= edge.max_memory_mb
    table = []
    for target in TARGETS:
        if target in measured:
            basis, assumption, p95 = "measured", "", call_ms + workload.batch_size * row_ms
        else:
            e = deployment.estimates[target]
            basis, assumption = "estimated", e.assumption
            p95 = call_ms / e.call_speedup + workload.batch_size * row_ms / e.row_speedup + e.overhead_ms
        p95 = max(p95, 1e-6)
        rows_per_s = workload.batch_size * 1000 / p95
        instances = max(1, math.ceil(rate / rows_per_s))
        usd_per_hour = instances * deployment.prices[target]
        eligible = target != "edge" or fits_edge
        note = (
            ""
            if eligible
            else (
                f"over the edge budget: {profile['size_mb']} MB (max {edge.max_size_mb}), "
                f"RSS +{profile['rss_mb']} MB (max {edge.max_memory_mb})"
            )
        )
        table.append(
            TargetCost(
                target,
                basis,
                assumption,
                round(p95, 4),
                round(rows_per_s, 1),
                instances,
                round(usd_per_hour, 6),
                round(usd_per_hour / (rate * 3600 / 1e6), 6),
                p95 <= workload.latency_slo_ms,
                eligible,
                note,
            )
        )
    return table


def recommend(costs: Sequence[TargetCost], workload: WorkloadConfig) -> Recommendation:
    """The cheapest eligible target meeting the p95 SLO; with none, the fastest eligible one."""
    eligible = [c for c in costs if c.eligible]
    meeting = sorted((c for c in eligible if c.meets_slo), key=lambda c: (c.usd_per_million, c.p95_ms))
    missing = ", ".join(f"{c.target} {c.p95_ms:.3g} ms" for c in eligible if not c.meets_slo)
    at = f"{workload.requests_per_s:g} req/s x {workload.batch_size} row(s)"
    if not meeting:
        fastest = min(eligible, key=lambda c: c.p95_ms)
        return Recommendation(
            fastest.target,
            f"no target meets the p95 SLO of {workload.latency_slo_ms:g} ms at {at}: {fastest.target} "
            f"({fastest.basis}) is the fastest, p95 {fastest.p95_ms:.3g} ms, ${fastest.usd_per_million:.4g}/M",
        )
    best = meeting[0]
    why = (
        f"cheapest target meeting the p95 SLO of {workload.latency_slo_ms:g} ms at {at}: {best.target} "
        f"({best.basis}) ${best.usd_per_million:.4g}/M, p95 {best.p95_ms:.3g} ms, {best.instances} instance(s)"
    )
    if len(meeting) > 1:
        why += f"; next {meeting[1].target} ({meeting[1].basis}) ${meeting[1].usd_per_million:.4g}/M"
    return Recommendation(best.target, why + (f"; over the SLO: {missing}" if missing else ""))


def metadata(
    host: Mapping[str, Any],
    profiles: Mapping[str, Mapping[str, Any]],
    served: str,
    costs: Sequence[TargetCost],
    recommendation: Recommendation,
    workload: WorkloadConfig,
) -> dict[str, Any]:
    """The `hardware` entry of the logged model's metadata: host, variant profiles, cost table, target."""
    return {
        "target": recommendation.target,
        "rationale": recommendation.rationale,
        "served": served,
        "cpu_p95_ms": profiles[served]["cpu_p95_ms"],
        "workload": asdict(workload),
        "host": dict(host),
        "variants": {name: dict(profile) for name, profile in profiles.items()},
        "costs": [asdict(c) for c in costs],
    }


def _served_figures(meta: Mapping[str, Any]) -> dict[str, float]:
    """The served variant's headline figures: 1 thread, wall and CPU p95, largest-batch throughput."""
    profile = meta["variants"][meta["served"]]
    one = profile["threads"]["1"]
    largest = max(one["batches"], key=int)
    return {
        "cpu_p95_ms": profile["cpu_p95_ms"],
        "wall_p95_ms": one["single_row"]["wall_p95_ms"],
        "load_s": one["load_s"],
        "rss_mb": profile["rss_mb"],
        "size_mb": profile["size_mb"],
        "rows_per_s": one["batches"][largest]["rows_per_s"],
    }


def tags(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The flat `hardware.*` tags of a registered version, from `metadata(...)`'s dict."""
    host = meta["host"]
    found: dict[str, Any] = {
        "hardware.target": meta["target"],
        "hardware.rationale": meta["rationale"],
        "hardware.served": meta["served"],
        **{f"hardware.{k}": v for k, v in _served_figures(meta).items()},
        "hardware.load_avg_1m": (
            f"{meta['variants'][meta['served']]['load_avg_1m_before']}"
            f"->{meta['variants'][meta['served']]['load_avg_1m_after']}"
        ),
        "hardware.cpu_model": host["cpu_model"],
        "hardware.cores": host["cores"],
        "hardware.isa": ",".join(host["isa"]),
        "hardware.gpu": host["gpu"],
        "hardware.memory_gb": host["memory_gb"],
    }
    for name, profile in meta["variants"].items():
        found[f"hardware.variant.{name}.cpu_p95_ms"] = profile["cpu_p95_ms"]
    for cost in meta["costs"]:
        found[f"hardware.cost.{cost['target']}.usd_per_million"] = cost["usd_per_million"]
        found[f"hardware.cost.{cost['target']}.basis"] = cost["basis"]
    return found


def metrics(meta: Mapping[str, Any]) -> dict[str, float]:
    """Run metrics with fixed names (`hw_*`): the served variant's figures and the target's cost."""
    cost = next(c for c in meta["costs"] if c["target"] == meta["target"])
    return {f"hw_{k}": float(v) for k, v in _served_figures(meta).items()} | {
        "hw_usd_per_million": float(cost["usd_per_million"])
    }


def _markdown(rows: list[dict[str, Any]]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False, tablefmt="github", disable_numparse=True)


def card_section(meta: Mapping[str, Any]) -> str:
    """Markdown for the model card: the cost table, the variants' figures and the recommendation."""
    workload, host = meta["workload"], meta["host"]
    costs = [
        {
            "target": f"`{c['target']}`",
            "basis": c["basis"],
            "p95 ms": f"{c['p95_ms']:.3g}",
            "rows/s per instance": f"{c['rows_per_s']:,.0f}",
            "instances": c["instances"],
            "USD/h": f"{c['usd_per_hour']:.4g}",
            "USD per million": f"{c['usd_per_million']:.4g}",
            "meets SLO": "yes" if c["meets_slo"] else "no",
            "note": c["note"] or c["assumption"] or "-",
        }
        for c in meta["costs"]
    ]
    variants = []
    for name, profile in meta["variants"].items():
        for n, t in profile["threads"].items():
            single = t["single_row"]
            variants.append(
                {
                    "variant": f"`{name}`" + (" (served)" if name == meta["served"] else ""),
                    "threads": n,
                    "CPU p50/p95/p99 ms": "/".join(f"{single[f'cpu_p{q}_ms']:.3g}" for q in (50, 95, 99)),
                    "wall p50/p95/p99 ms": "/".join(f"{single[f'wall_p{q}_ms']:.3g}" for q in (50, 95, 99)),
                    **{f"wall rows/s @{b}": f"{v['rows_per_s']:,.0f}" for b, v in t["batches"].items()},
                    "load s": t["load_s"],
                    "RSS MB": t["rss_mb"],
                }
            )
    served = meta["variants"][meta["served"]]
    return f"""### Hardware target and cost

**Recommended:** `{meta["target"]}`: {meta["rationale"]}

Workload: {workload["requests_per_s"]:g} requests/s of {workload["batch_size"]} row(s), SLO p95
{workload["latency_slo_ms"]:g} ms. `measured`: from the served variant's 1-thread CPU time on this
host; `estimated`: from those figures and the assumption in the note (config/deployment).

{_markdown(costs)}

Variants measured on {host["cpu_model"]} ({host["cores"]} cores, {host["arch"]}, ISA
{",".join(host["isa"]) or "none"}, GPU {host["gpu"]}); CPU = the calling thread's CPU time, wall =
wall clock; medians over repeats of each repeat's percentile. Load average (1 min)
{served["load_avg_1m_before"]} before, {served["load_avg_1m_after"]} after; size {served["size_mb"]} MB.

{_markdown(variants)}
"""
