"""What an analysis flow run's own process loads: it plans, waits on Dask and writes the map,
while torch runs on the workers. Each flow run is a process of its own (Prefect spawns one per
run), so torch in it would cost about 200 MB per queued analysis."""

from __future__ import annotations

import subprocess
import sys


def test_the_analyze_flow_process_does_not_load_torch() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, flows.analyze; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False", loaded.stderr
