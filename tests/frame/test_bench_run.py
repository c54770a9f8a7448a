"""``make bench``'s runner still works: a quick run of one cheap benchmark writes its row of the report."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_quick_run_writes_the_table(tmp_path):
    out = tmp_path / "report.md"
    done = run_bench("--quick", "--only", "sms", "--out", str(out))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = out.read_text()
    assert f"{os.cpu_count()} cores" in report and "Python " in report and "Node v" in report
    row = next(line for line in report.splitlines() if line.startswith("| sms |"))
    assert "reports/s" in row and "messages/s" in row and "failed" not in row


def test_unknown_benchmark_is_refused(tmp_path):
    done = run_bench("--only", "nope", "--out", str(tmp_path / "report.md"))
    assert done.returncode == 2 and "unknown benchmark" in done.stderr
    assert not (tmp_path / "report.md").exists()
