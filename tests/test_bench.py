"""Each benchmark entry point runs, with tiny parameters (figures are not checked here)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_benchmark_runs_and_prints_its_baseline_and_goal(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "ack",
            "ack-under-load",
            "bulk",
            "copy",
            "--seconds=0.3",
            "--assets=3",
            "--sizes=1M",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # ack-under-load takes a minute even with tiny copies (the worker drains
    # the load's tasks), so it is left to `make bench`.
    for heading in ("bulk:", "copy:"):
        assert heading in out
    assert "curl+sync" in out and "pacer (baseline)" in out
    assert out.count("goal >=") >= 2
    assert list(tmp_path.iterdir()) == []  # scratch folders are removed
