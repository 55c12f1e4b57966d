"""The README is true and runnable (issue 22, items 2 and 3): its "Using it" example runs as
written, `make help` lists every figure's target and the variables a user sets, and the
commands it promises behave as it says."""
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def using_it_example():
    section = README.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(not os.environ.get("REPRODUCER_DATA") and not Path.home().joinpath(
    ".cache", "reproducer", "mnist").exists(), reason="MNIST not available (set REPRODUCER_DATA)")
def test_the_using_it_example_runs_as_written(capsys):
    namespace = {"__name__": "readme_example"}
    exec(compile(using_it_example(), "README.md (Using it)", "exec"), namespace)
    hypergradient = namespace["hypergradient"]
    assert hypergradient.shape == (3,) and np.all(np.isfinite(hypergradient))
    assert np.all(hypergradient != 0)
    assert capsys.readouterr().out.strip().startswith("[")


def make(*args):
    return subprocess.run(["make", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_make_help_lists_every_figure_and_the_variables():
    out = make("help").stdout
    for notebook in NOTEBOOKS:
        assert f"notebooks/{notebook}.ipynb" in out
    for short in ("fig1", "fig2 fig3 fig5", "fig4", "fig6", "fig7", "fig8", "fig9", "fig10",
                  "tutorial", "memory_comparison", "reversible_adam", "data_augmentation"):
        assert f"make {short} " in out
    for variable in ("SCALE=", "FORCE=", "REPRODUCER_DATA=", "REPEATS=", "PYTHON="):
        assert variable in out
    assert "JOBS" not in out and "JOBS" not in (ROOT / "Makefile").read_text()


def test_a_committed_figure_at_another_scale_is_refused_with_the_command():
    done = make("figures/fig1_toy_meta_learning.png", "SCALE=quick")
    assert done.returncode != 0
    assert "make fig1 SCALE=quick" in done.stderr and "Nothing to be done" not in done.stdout


def test_every_figure_has_a_short_target_at_any_scale():
    for scale in ("smoke", "quick", "paper"):
        done = make("-n", "fig10", "fig2", "tutorial", f"SCALE={scale}", "FORCE=1")
        assert done.returncode == 0, done.stderr
        folder = "figures" if scale == "paper" else f"build/figures-{scale}"
        for notebook in ("fig10_chaos", "learning_schedules", "tutorial"):
            assert f"notebooks/{notebook}.ipynb build/executed/{notebook}-{scale}.ipynb {scale} {folder}" \
                in done.stdout.replace("\\\n\t\t", "")
        assert "--position" not in done.stdout                 # no [k/n] for single targets


def test_the_readme_tables_have_their_markers():
    from reproducer import claims, provenance
    for start, end in ((claims.START, claims.END), (provenance.START, provenance.END)):
        assert README.count(start) == 1 and README.index(start) < README.index(end)
    assert "earlier setting" not in README
