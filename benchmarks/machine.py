"""The machine a bench ran on, and the one place the bench talks to its user."""

import os
import subprocess
import sys
from importlib import metadata
from typing import Any

from benchmarks.settings import ROOT, Settings
from housing_mlops.registry import hardware

LIBRARIES = ("mlflow", "scikit-learn", "optuna", "pandas", "numpy", "hydra-core", "joblib")


def machine_info(quick: bool) -> dict[str, Any]:
    """CPU, memory, load, Python, library versions and git state, recorded with every result."""
    host = hardware.host_fingerprint()
    return {
        "cpu_model": host["cpu_model"],
        "cores": host["cores"],
        "memory_gb": host["memory_gb"],
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "libraries": {name: metadata.version(name) for name in LIBRARIES},
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if k in os.environ},
        "git_sha": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain")),
        "quick": quick,
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def machine_line(m: dict[str, Any]) -> str:
    """The machine in one sentence, as the report captions every table."""
    libs = m["libraries"]
    return (
        f"{m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB RAM; Python {m['python']}, "
        f"mlflow {libs['mlflow']}, scikit-learn {libs['scikit-learn']}, optuna {libs['optuna']}; "
        f"git {m['git_sha']}{' (uncommitted changes)' if m['git_dirty'] else ''}"
    )


def say(message: str, *, warn: bool = False, tag: bool = True) -> None:
    """One message to the bench's user: `[bench] ...` on stdout, warnings and failures on stderr."""
    stream = sys.stderr if warn else sys.stdout  # the bench's one output: its own console, not a log
    stream.write((f"[bench] {message}" if tag else message) + "\n")
    stream.flush()


def figure(settings: Settings, label: str, value: str) -> None:
    """One figure on the console, with the machine it was measured on beside it."""
    m = settings.machine
    say(f"{label}: {value}    ({m['cores']} cores, {m['cpu_model']})")
