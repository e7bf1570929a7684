"""Every benchmark script runs in its tiny mode and writes its table."""

import subprocess
import sys

from conftest import ROOT, python_env


def test_first_path_benchmark_tiny(tmp_path):
    results = tmp_path / "results.md"
    result = subprocess.run(
        [sys.executable, "bench/first_path.py", "--tiny", f"--out_dir={tmp_path / 'work'}",
         f"--results={results}"], capture_output=True, text=True, env=python_env(),
        timeout=300, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    table = results.read_text()
    assert "data-free student accuracy" in table and "| teacher test accuracy |" in table
