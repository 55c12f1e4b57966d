"""The benchmarks at a tiny size: the numpy one end to end, the JAX one's memory readings
(what they measure, not how much: speed and memory are measured by `make bench`, never by
a timed test)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_sgd_runs_and_says_what_it_measured():
    out = subprocess.run([sys.executable, "benchmarks/bench_sgd.py", "3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, REPEATS="1"))
    assert out.returncode == 0, out.stderr[-2000:]
    for expected in ("BLAS runs on\none thread", "load averages (1, 5, 15 min) at the start",
                     "T = 3", "hypergradient, exact", "Adam", "at the end"):
        assert expected in out.stdout, expected


def test_bench_sgd_refuses_a_bad_repeats():
    out = subprocess.run([sys.executable, "benchmarks/bench_sgd.py", "3"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, REPEATS="zero"))
    assert out.returncode != 0
    assert "REPEATS must be a positive whole number" in out.stderr


def _memory_report(name, *extra):
    out = subprocess.run([sys.executable, "benchmarks/bench_jax.py", "--memory", name, "3",
                          *extra], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_jax_measures_memory_with_everything_compiled_first():
    """The memory readings are 'compiled first, then the run': a method that compiled
    anything during its measured run (as our hypergradient once compiled the meta-loss's
    gradient there) would count the compiler's memory as the run's."""
    for name in ("exact reversal, hypergradient", "jax.grad via lax.scan, hypergradient"):
        report = _memory_report(name)
        assert report["compiled_in_run"] == [], (name, report["compiled_in_run"])
        assert report["peak"] >= report["added"] > 0
        assert report["trimmed"] is False
    report = _memory_report("exact reversal, hypergradient", "--trim")
    assert report["trimmed"] is (sys.platform == "linux")
    assert report["buffer_bytes"] >= report["bound_bytes"] > 0
