"""The Markdown report of one bench run, and the README section it replaces."""

import re
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.machine import machine_line

# the issue-15 serving goals are of the served variant, on one thread (p50/p99 in ms, rows/s, seconds)
GOALS = {
    # issue 17: a 50-trial sweep by count, and the pipeline around it
    "cold_s": 240.0,
    "ratio": 1.10,
    "cached_s": 8.0,
    "sweep_trials": 50,
    "sweep_s": 150.0,
    "sweep_best_cv_wmape": 0.1205,
    "test_wmape": 0.118,
    "test_rmse": 39_500.0,
    "runtime_p50_ms": 0.2,
    "runtime_rows_per_s": 200_000.0,
    "pyfunc_p50_ms": 2.0,
    "pyfunc_p99_ms": 5.0,
    "http_p50_ms": 5.0,
    "parity_max_rel_error": 1e-4,
    "register_s": 30.0,
    # issue 16: of monitor.calibration.resamples (50) resamples of the sealed test set, at most this many say drift
    "monitor_resample_drift": 2,
}
TPE_AHEAD_AT = (20, 30, 40, 50)  # issue 17: TPE's best below random sampling's at these trial counts
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"
CHECKPOINTS = (1, 5, 10, 20, 30, 40, 50, 75, 100)
SERVING_PATHS = (("own runtime", "runtime"), ("`mlflow.pyfunc`", "pyfunc"), ("HTTP `mlflow models serve`", "http"))
VARIANTS = {"onnx": "compiled (ONNX Runtime)", "sklearn": "sklearn Pipeline"}


def latency_text(figures: dict[str, float]) -> str:
    """`p50 / p95 / p99 ms` as the console and the report show them."""
    return f"{figures['p50_ms']:.2f} / {figures['p95_ms']:.2f} / {figures['p99_ms']:.2f} ms"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows of formatted cells as a Markdown table: first column left-aligned, the figures right-aligned."""
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    align = ["left"] + ["right"] * (len(header) - 1)
    return str(frame.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, colalign=align)).splitlines()


def checkpoints(n: int) -> list[int]:
    """The trial counts the sweep table shows for `n` trials: round marks up to `n`, and `n`."""
    return sorted({m for m in CHECKPOINTS if m <= n} | {n})


def yes_no(ok: bool) -> str:
    """The `met` cell of a goal that is not a single number."""
    return "yes" if ok else "**no**"


def met(value: float | None, goal: float, *, at_least: bool = False) -> str:
    """The `met` cell: yes, **no**, or — when there is no figure; the goal is a ceiling unless `at_least`."""
    if value is None:
        return "—"
    return "yes" if (value >= goal if at_least else value <= goal) else "**no**"


def render(results: dict[str, Any], image_dir: str) -> str:
    """The Markdown report; `image_dir` is where the plot is relative to the Markdown file."""
    m, quick = results["machine"], results["machine"]["quick"]
    rows = results["data"]["rows"]
    where = (
        f"{rows:,}-row sample, smoke overrides (goals are for the full data)" if quick else f"full data ({rows:,} rows)"
    )
    caption = f"Machine: {machine_line(m)}"
    lines = [
        f"Benchmark of {results['date']} on the {where}, `{results['command']}`.",
        "",
        caption,
        "",
        *summary_table(results),
    ]
    if "cold" in results:
        lines += ["", f"Per step, cold run. {caption}", "", *steps_table(results)]
    if "serving" in results:
        lines += ["", f"Serving `{results['serving']['model_uri']}`. {caption}", "", *serving_table(results)]
        graph = results["serving"]["variants"].get("onnx", {}).get("graph_profile")
        if graph:
            lines += [
                "",
                f"Where the compiled graph's time goes, per Pipeline stage. {caption}",
                "",
                *graph_table(graph),
            ]
    if "monitor" in results:
        lines += ["", f"Monitor calibration, {results['monitor']['model']}. {caption}", ""]
        lines += monitor_table(results["monitor"])
    if "sweep" in results:
        lines += ["", f"Sweep efficiency. {caption}", "", *sweep_table(results)]
        lines += ["", f"![best CV wMAPE vs trials]({image_dir}{results['sweep']['plot']})"]
    for part, error in results.get("errors", {}).items():
        lines += ["", f"**{part} failed:** {error.splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def summary_rows(r: dict[str, Any]) -> list[list[str]]:
    """The headline figures, one row per measure: value, goal and whether it is met."""
    rows: list[list[str]] = []
    if "cold" in r:
        wall = r["cold"]["wall_s"]
        goal = GOALS["cold_s"]
        rows.append(["pipeline end to end, cold (empty store)", f"{wall:.1f} s", f"≤ {goal:.0f} s", met(wall, goal)])
    if "cold" in r:
        rows += sweep_rows(r["cold"])
    if "busy" in r:
        b = r["busy"]
        unchanged = all(b["same_as_cold"].values())
        label = f"cold run again beside {b['burners']} CPU burners: digest, trials, best CV, test metrics"
        rows.append([label, f"{b['wall_s']:.1f} s", "the same model", yes_no(unchanged)])
    if "floor" in r:
        f = r["floor"]
        same = {
            True: ", same best CV and test wMAPE as the pipeline",
            False: ", **results differ from the pipeline's**",
        }
        label = f"compute floor: same fits, bare script ({f['sweep']['trials_finished']} sweep trials"
        label += same.get(f.get("same_best_as_pipeline") and f.get("same_test_wmape_as_pipeline"), "") + ")"
        rows.append([label, f"{f['wall_s']:.1f} s", "", ""])
    if "ratio" in r:
        rows.append(
            ["pipeline / floor", f"{r['ratio']:.3f}", f"≤ {GOALS['ratio']:.2f}", met(r["ratio"], GOALS["ratio"])]
        )
    if "cached" in r:
        c = r["cached"]
        label, ok = f"fully cached re-run (median of {len(c['runs_s'])})", met(c["median_s"], GOALS["cached_s"])
        if not c["fully_cached"]:
            label, ok = f"re-run, **not fully cached** ({', '.join(c['steps_that_ran'])} ran)", "—"
        rows.append([label, f"{c['median_s']:.1f} s", f"≤ {GOALS['cached_s']:.0f} s", ok])
    if "serving" in r:
        rows += serving_rows(r["serving"])
    if "monitor" in r:
        rows += monitor_rows(r["monitor"])
    register = register_row(r)
    if register:
        rows.append(register)
    if "sweep" in r:
        curves = r["sweep"]["samplers"]
        n = min(len(c["best_so_far"]) for c in curves.values())
        best = " / ".join(f"{curves[s]['final_best']:.4f}" for s in ("tpe", "random"))
        rows.append([f"sweep: best CV wMAPE after {n} trials, TPE / random", best, "", ""])
        ahead = [k for k in TPE_AHEAD_AT if k <= n and tpe_ahead(curves, k)]
        shown = ", ".join(str(k) for k in ahead) or "none"
        wanted = list(TPE_AHEAD_AT)
        label = "sweep: trial counts where TPE's best is below random's"
        rows.append([label, shown, ", ".join(map(str, wanted)), yes_no(ahead == wanted)])
    return rows


def tpe_ahead(curves: dict[str, Any], trials: int) -> bool:
    """Whether TPE's best so far after `trials` trials is strictly below random sampling's."""
    tpe, rnd = curves["tpe"]["best_so_far"][trials - 1], curves["random"]["best_so_far"][trials - 1]
    return tpe is not None and (rnd is None or tpe < rnd)


def sweep_rows(c: dict[str, Any]) -> list[list[str]]:
    """The cold run's sweep step and registered model against the issue-17 goals."""
    sweep = next((s for s in c["steps"] if s["step"] == "sweep"), None)
    rows: list[list[str]] = []
    if sweep is not None:
        trials, wall = c.get("sweep_trials_finished", 0), sweep["wall_s"]
        ok = trials >= GOALS["sweep_trials"] and wall <= GOALS["sweep_s"]
        budget = f"{GOALS['sweep_trials']:.0f} trials ≤ {GOALS['sweep_s']:.0f} s"
        rows.append([f"sweep step: {trials} finished trials", f"{wall:.1f} s", budget, yes_no(ok)])
    best, grid = c.get("sweep_best_cv_wmape"), c.get("sweep_grid_cv_wmape")
    if best is not None:
        goal = GOALS["sweep_best_cv_wmape"]
        better = grid is None or best < grid
        label = "sweep: best CV wMAPE" + ("" if grid is None else f" (grid winner on the same folds {grid:.4f})")
        rows.append([label, f"{best:.4f}", f"≤ {goal}, below the grid's", yes_no(best <= goal and better)])
    registered, members = c.get("sweep_cv_wmape"), c.get("sweep_members")
    if registered is not None and members and members > 1:
        goal = GOALS["sweep_best_cv_wmape"]
        better = grid is None or registered < grid
        label = f"sweep: registered model's CV wMAPE (the best {members:.0f} trials averaged)"
        rows.append([label, f"{registered:.4f}", f"≤ {goal}, below the grid's", yes_no(registered <= goal and better)])
    for metric, fmt in (("wmape", ".4f"), ("rmse", ",.0f")):
        value, ceiling = c.get(f"test_{metric}"), GOALS[f"test_{metric}"]
        if value is not None:
            rows.append(
                [f"registered model: test {metric}", f"{value:{fmt}}", f"≤ {ceiling:{fmt}}", met(value, ceiling)]
            )
    return rows


def goal_row(label: str, value: float, goal: str, unit: str, decimals: int = 2) -> list[str]:
    """A summary row against GOALS[goal]: a ceiling in ms, a floor in rows/s."""
    at_least = unit == "rows/s"
    target = GOALS[goal]
    shown = f"{value:,.0f}" if at_least else f"{value:.{decimals}f}"
    return [
        label,
        f"{shown} {unit}",
        f"{'≥' if at_least else '≤'} {target:,g} {unit}",
        met(value, target, at_least=at_least),
    ]


def serving_rows(s: dict[str, Any]) -> list[list[str]]:
    """The served variant's figures against the goals, the other variant's beside them, and parity."""
    served, variants = s["served"], s["variants"]
    f = variants[served]
    name = VARIANTS[served]
    rt, py, web = f["runtime"], f["pyfunc"], f["http"]
    batch = f"{rt['batch_rows']:,}-row batch"
    rows = [
        goal_row(f"served, {name}: own runtime, one row, p50", rt["p50_ms"], "runtime_p50_ms", "ms", 3),
        goal_row(
            f"served, {name}: own runtime, {batch}, 1 thread", rt["batch_rows_per_s"], "runtime_rows_per_s", "rows/s"
        ),
        goal_row(f"served, {name}: `mlflow.pyfunc`, one row, p50", py["p50_ms"], "pyfunc_p50_ms", "ms"),
        goal_row(f"served, {name}: `mlflow.pyfunc`, one row, p99", py["p99_ms"], "pyfunc_p99_ms", "ms"),
        goal_row(f"served, {name}: HTTP `mlflow models serve`, one row, p50", web["p50_ms"], "http_p50_ms", "ms"),
    ]
    for other in (v for v in variants if v != served):
        o = variants[other]
        p50s = " / ".join(f"{o[key]['p50_ms']:.2f}" for _, key in SERVING_PATHS)
        rows.append([f"not served, {VARIANTS[other]}: one row p50, own runtime / pyfunc / HTTP", f"{p50s} ms", "", ""])
    parity = s["parity"]
    if "max_rel_error" in parity:
        tag = parity["tagged_max_rel_error"]
        label = f"parity: max relative error, compiled vs sklearn, {parity['rows']:,} test rows"
        label += "" if tag is None else f" (version tag {tag:.3g})"
        error, goal = parity["max_rel_error"], GOALS["parity_max_rel_error"]
        rows.append([label, f"{error:.3g}", f"≤ {goal:g}", met(error, goal) if not parity["nan"] else "**no** (NaN)"])
        scores = parity["scores"]
        for metric, shown in (("wmape", "wMAPE"), ("rmse", "RMSE")):
            value = f"{scores['onnx'][metric]:,.4f} / {scores['sklearn'][metric]:,.4f}"
            equal = "yes" if parity["equal_4dp"][metric] else "**no**"
            rows.append([f"test {shown}, compiled / sklearn", value, "equal to 4 decimals", equal])
    return rows


def monitor_rows(m: dict[str, Any]) -> list[list[str]]:
    """The calibration against its goals: drift on resamples, and each shift's verdict against the expected one."""
    counts, goal = m["resamples"], GOALS["monitor_resample_drift"]
    total = sum(counts.values())
    label = f"monitor: resamples of the sealed test set ({m['test_rows']:,} rows) called drift"
    value = f"{counts['drift']} of {total}" + (f" (degraded {counts['degraded']})" if counts["degraded"] else "")
    rows = [[label, value, f"≤ {goal}", met(counts["drift"], goal)]]
    for name, shift in m["shifts"].items():
        met_cell = "yes" if shift["as_expected"] else "**no**"
        rows.append([f"monitor: {name}", shift["verdict"], shift["expected"], met_cell])
    rows.append(["monitor: calibration time (1 thread)", f"{m['seconds']:.1f} s", "", ""])
    return rows


def monitor_table(m: dict[str, Any]) -> list[str]:
    """Per shifted batch: rows, verdict, the expected one, the drifted features by PSI, the lower wMAPE bound."""
    rows = []
    for name, shift in m["shifts"].items():
        drifted = ", ".join(f"{n} {psi:.2f}" for n, psi in shift["drifted"].items()) or "none"
        low = "—" if shift["wmape_low"] is None else f"{shift['wmape_low']:.4f}"
        cells = [name, f"{shift['rows']:,}", shift["verdict"], shift["expected"], drifted]
        rows.append([*cells, f"{shift['prediction_psi']:.2f}", low])
    header = ["batch", "rows", "verdict", "expected", "drifted features (PSI)", "prediction PSI", "wMAPE low"]
    counts = ", ".join(f"{k} {v}" for k, v in m["resamples"].items())
    load = " → ".join(f"{x:.2f}" for x in m["load_avg_1m"])
    note = (
        f"Resamples of the {m['test_rows']:,} labelled test rows (with replacement, as many rows): {counts}. "
        f"Shifted batches without labels, the scaled prices with them. {m['seconds']:.1f} s in all, "
        f"one native thread; load average 1 min over the part: {load}."
    )
    return [*markdown_table(header, rows), "", note]


def register_row(r: dict[str, Any]) -> list[str] | None:
    """The register step's seconds against its goal: the cold run's step, else the champion's register run."""
    cost = (r.get("cold") or {}).get("register") or (r.get("serving") or {}).get("register")
    if not cost:
        return None
    seconds, where = cost["wall_s"], "cold run"
    if seconds is None:
        seconds, where = cost["run_s"], "inside the champion's register run"
    split = ""
    if cost["compile_s"] is not None and cost["profile_s"] is not None:
        reference = cost.get("reference_s") or 0.0
        rest = cost["run_s"] - cost["compile_s"] - cost["profile_s"] - reference
        split = f"; conversion + parity {cost['compile_s']:.1f} s, profiling {cost['profile_s']:.1f} s"
        if cost.get("reference_s") is not None:
            split += f", monitoring reference {reference:.1f} s"
        split += f", fit, scoring, logging and gate {rest:.1f} s"
    goal = GOALS["register_s"]
    return [f"register step ({where}{split})", f"{seconds:.1f} s", f"≤ {goal:.0f} s", met(seconds, goal)]


def summary_table(r: dict[str, Any]) -> list[str]:
    """The headline table: pipeline cold and cached, floor, ratio, serving, sweep, against their goals."""
    return markdown_table(["measure", "value", "goal", "met"], summary_rows(r))


def steps_table(r: dict[str, Any]) -> list[str]:
    """Per step of the cold run: wall time, time inside its MLflow run, the floor's time and the ratio."""
    floor_s = r.get("floor", {}).get("seconds", {})
    rows = []
    for s in r["cold"]["steps"]:
        f = floor_s.get(s["step"])
        ratio = f"{s['wall_s'] / f:.2f}" if f and f >= 0.5 else "—"  # ratios of sub-second times are noise
        rows.append([s["step"], f"{s['wall_s']:.1f}", f"{s['run_s']:.1f}", "—" if f is None else f"{f:.1f}", ratio])
    rows.append(["(launcher, orchestrator, between steps)", f"{r['cold']['outside_steps_s']:.1f}", "", "", ""])
    header = ["step", "pipeline wall (s)", "inside its MLflow run (s)", "floor (s)", "pipeline / floor"]
    return markdown_table(header, rows)


def serving_table(r: dict[str, Any]) -> list[str]:
    """Each variant on each path, one thread: latency percentiles, batch throughput, readiness and load."""
    s = r["serving"]
    rows = []
    for variant, paths in s["variants"].items():
        for name, key in SERVING_PATHS:
            f = paths[key]
            cpu = f"{f['cpu_p50_ms']:.3f} / {f['cpu_p99_ms']:.3f}" if "cpu_p50_ms" in f else "—"
            ready = f.get("load_s", f.get("startup_s"))
            load = " → ".join(f"{x:.2f}" for x in f["load_avg_1m"])
            latencies = [f"{f['p50_ms']:.3f}", f"{f['p95_ms']:.3f}", f"{f['p99_ms']:.3f}"]
            batch = [f"{f['batch_rows']:,}", f"{f['batch_rows_per_s']:,.0f}"]
            rows.append([f"{VARIANTS[variant]}, {name}", *latencies, cpu, *batch, f"{ready:.2f}", load])
    header = ["variant, path", "p50 (ms)", "p95 (ms)", "p99 (ms)", "CPU p50 / p99 (ms)", "batch (rows)"]
    header += ["batch (rows/s)", "ready in (s)", "load avg 1 min"]
    note = (
        f"One thread (ONNX Runtime intra-op 1, native pools limited to 1); {s['calls']} single rows per path "
        f"in {s['repeats']} repeats (percentiles: median over repeats in-process, over all calls over HTTP); "
        f"served: {s['served']} (v{s['version']}); load average 1 min over the part: "
        + " → ".join(f"{x:.2f}" for x in s["load_avg_1m"])
        + "."
    )
    return [*markdown_table(header, rows), "", note]


def ops_text(ops: list[str], shown: int = 3) -> str:
    """The op types of a stage, the first few and how many more."""
    return ", ".join(ops[:shown]) + (f" +{len(ops) - shown}" if len(ops) > shown else "")


def graph_table(profile: dict[str, Any]) -> list[str]:
    """Per stage of the compiled graph: kernel time on the batch and its share of the call; one row split apart."""
    one, batch = profile["one_row"], profile["batch"]

    def share(ms: float) -> str:
        return f"{100 * ms / batch['wall_ms']:.1f} %"

    rows = [[stage, ops_text(f["ops"]), f"{f['ms']:.2f}", share(f["ms"])] for stage, f in batch["stages"].items()]
    outside = batch["run_ms"] - sum(s["ms"] for s in batch["stages"].values())
    feeds = batch["wall_ms"] - batch["run_ms"]
    rows.append(["ONNX Runtime outside the nodes", "", f"{outside:.2f}", share(outside)])
    rows.append(["outside the session: feeds, chunks", "", f"{feeds:.2f}", share(feeds)])
    rows.append(["whole call", "", f"{batch['wall_ms']:.2f}", "100.0 %"])
    header = ["stage", "op types", f"{batch['rows']:,} rows (ms)", "share of the call"]
    note = (
        f"ONNX Runtime's profiler on, 1 thread; mean of {batch['calls']} {batch['rows']:,}-row calls. "
        f"One row, profiler off (median of {one['calls']} distinct rows): "
        f"feeds from pandas {one['feeds_us']:.1f} µs, session run {one['run_us']:.1f} µs "
        f"(p99 {one['run_p99_us']:,.1f} µs), whole predict {one['predict_us']:.1f} µs."
    )
    return [*markdown_table(header, rows), "", note]


def sweep_table(r: dict[str, Any]) -> list[str]:
    """Best CV wMAPE so far at the checkpoints for TPE and random sampling, and a note on the runs."""
    curves = r["sweep"]["samplers"]
    n = min(len(c["best_so_far"]) for c in curves.values())
    rows = []
    for k in checkpoints(n):
        cells = [curves[s]["best_so_far"][k - 1] for s in ("tpe", "random")]
        rows.append([str(k), *("—" if v is None else f"{v:.4f}" for v in cells)])
    timing = ", ".join(
        f"{s}: {c['seconds']:.0f} s, {c['pruned']} pruned, best at trial {c['best_at_trial']}"
        for s, c in curves.items()
    )
    startup = r["sweep"]["n_startup_trials"]
    note = (
        f"{r['sweep']['family']}, {r['sweep']['folds']}-fold CV, no timeout, the grid winner as trial 1; {timing}. "
        f"TPE draws its first {startup} trials at random from the same seed, so the curves coincide up to there."
    )
    return [*markdown_table(["trials", "TPE best CV wMAPE", "random best CV wMAPE"], rows), "", note]


def update_readme(readme: Path, markdown: str) -> None:
    """Replace what lies between the bench markers with `markdown`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{readme} has no {README_START} ... {README_END} markers")
    block = f"{README_START}\n{markdown.strip()}\n{README_END}"
    readme.write_text(pattern.sub(lambda _: block, text, count=1))
