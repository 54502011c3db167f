"""The benchmark harnesses run and write their reports (tiny shapes; no assertion on any timing value)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_search_throughput_benchmark_writes_its_report(tmp_path):
    out = tmp_path / "search_throughput.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/search_throughput.py"), "--out", str(out), "--batch-size", "2",
         "--width", "8", "--k-max", "2", "--vocab-size", "1200", "--teacher-dim", "16", "--teacher-layers", "2",
         "--single-steps", "2", "--mixed-steps", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert [r["execution"] for r in report["results"]] == ["single_path", "mixed"]
    for r in report["results"]:
        assert r["steps"] == 2 and r["step_s"] > 0 and r["peak_rss_mb"] > 0
        assert 1 <= r["mean_depth"] <= 2
    assert report["settings"]["width"] == 8 and report["machine"]["threads"] == 1
    assert report["speedup_single_over_mixed"] > 0
