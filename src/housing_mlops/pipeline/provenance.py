"""Which code made a run: the project's git commit and whether its tree was clean."""

import subprocess
from pathlib import Path


def code_version(root: Path) -> dict[str, str]:
    """The git SHA of the project and whether the working tree has uncommitted changes."""
    # two plumbing commands: GitPython would be a dependency for what `git` prints in one line
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"sha": "unknown", "dirty": "unknown"}
    return {"sha": sha, "dirty": str(bool(status.strip())).lower()}
