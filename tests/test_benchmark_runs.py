"""The benchmark still runs end to end (its figures are read by people, not asserted)."""

import subprocess
import sys

from tests.builders import ROOT


def test_the_benchmark_runs_and_finds_the_steady_state_byte_identical():
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--duration", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for title in ("Pure function per call", "Growth", "HTTP (wrk", "Ratios", "Steady state"):
        assert title in out.stdout
    steady = out.stdout.split("Steady state")[1]
    assert "False" not in steady and steady.count("True") == 8
    assert "| hooks " in out.stdout and "| (b) stdlib example" in out.stdout
