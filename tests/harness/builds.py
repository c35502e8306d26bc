"""Running the pinned build scripts of hack/: each prints its cached bin directory last."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def built(script: str, error: type[Exception]) -> Path:
    """The bin directory `hack/<script>` prints, building what is not cached first; `error`
    carries the script's own message naming the step that failed."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / script)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise error(f"{script} failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])
