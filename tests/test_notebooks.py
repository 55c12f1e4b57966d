"""Figure notebooks: their form (one parameters cell of literals, no stored outputs), that
each runs at smoke scale and writes its figures, and save_figure itself."""
import ast
import json
import os
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reproducer.plotting import save_figure, to_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def figures_of(notebook):
    """The figures a notebook must write: its FIGURES_<name> line in the Makefile, else its name."""
    match = re.search(rf"^FIGURES_{notebook.stem}\s*:=(.*)$", (ROOT / "Makefile").read_text(), re.M)
    return match.group(1).split() if match else [notebook.stem]


def cells(notebook):
    return json.loads(notebook.read_text())["cells"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_of_literals(notebook):
    tagged = [c for c in cells(notebook) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
    names = {}
    for statement in ast.parse("".join(tagged[0]["source"])).body:
        assert isinstance(statement, ast.Assign), "only assignments in the parameters cell"
        names[statement.targets[0].id] = ast.literal_eval(statement.value)   # literals only
    assert names["scale"] == "paper" and names["output_dir"] == "figures"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(notebook):
    code = [c for c in cells(notebook) if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


@pytest.mark.skipif(not os.environ.get("REPRODUCER_DATA") and not Path.home().joinpath(
    ".cache", "reproducer", "mnist").exists(), reason="MNIST not available (set REPRODUCER_DATA)")
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_at_smoke_scale_and_writes_its_figures(notebook, tmp_path):
    from reproducer.run_notebook import run
    figures = figures_of(notebook)
    run(notebook, tmp_path / "executed.ipynb", "smoke", tmp_path, *figures)
    for name in figures:
        for ext in ("png", "pdf", "json"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
        assert json.loads((tmp_path / f"{name}.json").read_text())["scale"] == "smoke"


def test_save_figure_writes_three_files_and_json_round_trips(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    data = {"curve": np.array([[1.5, 2.0], [3.0, np.nan]]), "n": np.int64(3),
            "nested": {"flag": np.bool_(True), "values": (0.25, 1)}}
    paths = save_figure(fig, tmp_path / "out", "demo", data)
    plt.close(fig)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["demo.json", "demo.pdf", "demo.png"]
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["pdf"].read_bytes()[:4] == b"%PDF"
    assert json.loads(paths["json"].read_text()) == {
        "curve": [[1.5, 2.0], [3.0, None]], "n": 3, "nested": {"flag": True, "values": [0.25, 1]}}


def test_to_json_by_hand():
    assert to_json({1: np.float32(0.5), "inf": float("inf")}) == {"1": 0.5, "inf": None}
    assert to_json([np.arange(2)]) == [[0, 1]]


def test_a_failed_save_leaves_no_file(tmp_path):
    fig = plt.figure()
    with pytest.raises(TypeError):
        save_figure(fig, tmp_path, "broken", {"bad": object()})
    plt.close(fig)
    assert list(tmp_path.iterdir()) == []
