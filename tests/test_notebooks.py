"""Figure notebooks: their form (one parameters cell of literals, no stored outputs), that
each runs at smoke scale and writes its figures, and save_figure itself."""
import ast
import json
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
    # Run by hand (no injected parameters) a notebook takes minutes and writes under build/
    assert names["scale"] == "quick" and names["output_dir"].startswith("build/")
    following = cells(notebook)[cells(notebook).index(tagged[0]) + 1]
    assert "scale, output_dir = resolve_parameters(scale, output_dir)" in "".join(following["source"])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(notebook):
    code = [c for c in cells(notebook) if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)


# What a notebook's code calls tells which data it reads
READS = {"mnist": ("mnist_splits", "load_mnist", "Setting(", "chaos_sweep", "first_mnist_images",
                   "mnist_arrays"),
         "omniglot": ("omniglot_tasks", "load_omniglot", "load_alphabets_105")}


def data_missing(notebook):
    """The datasets `notebook` reads whose files are not on disk (data.on_disk: the files the
    loaders look up, in $REPRODUCER_DATA or the cache), so that offline it cannot run."""
    from reproducer.data import on_disk
    code = "".join("".join(c["source"]) for c in cells(notebook) if c["cell_type"] == "code")
    return [dataset for dataset, calls in READS.items()
            if any(call in code for call in calls) and not on_disk(dataset)]


def smoke_run(notebook):
    missing = data_missing(notebook)
    reason = (f"{' and '.join(missing)} not on disk: set REPRODUCER_DATA to a folder holding "
              f"{', '.join(m + '/' for m in missing)} (or load it once online)")
    return pytest.param(notebook, id=notebook.stem, marks=pytest.mark.skipif(bool(missing), reason=reason))


@pytest.mark.parametrize("notebook", [smoke_run(nb) for nb in NOTEBOOKS])
def test_runs_at_smoke_scale_and_writes_its_figures(notebook, tmp_path):
    from reproducer.run_notebook import run
    figures = figures_of(notebook)
    run(notebook, tmp_path / "executed.ipynb", "smoke", tmp_path, *figures)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no staging left
    for name in figures:
        for ext in ("png", "pdf", "json"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
        assert json.loads((tmp_path / f"{name}.json").read_text())["scale"] == "smoke"


def test_offline_a_folder_without_the_files_does_not_count_as_data(monkeypatch, tmp_path):
    """A failed download leaves an empty cache folder; an empty REPRODUCER_DATA is no data
    either: the smoke runs skip until the files themselves are there."""
    from reproducer.data import MNIST_FILES, OMNIGLOT_NPZ
    monkeypatch.setenv("REPRODUCER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("REPRODUCER_CACHE", str(tmp_path / "cache"))
    for folder in ("data/mnist", "data/omniglot", "cache/mnist", "cache/omniglot"):
        (tmp_path / folder).mkdir(parents=True)
    notebook = {nb.stem: nb for nb in NOTEBOOKS}
    assert data_missing(notebook["fig7_learned_training_set"]) == ["mnist"]
    assert data_missing(notebook["fig9_omniglot_sharing"]) == ["omniglot"]
    assert data_missing(notebook["fig1_toy_meta_learning"]) == []     # reads no data
    for name in MNIST_FILES:
        (tmp_path / "cache" / "mnist" / name).write_bytes(b"")
    (tmp_path / "data" / "omniglot" / next(iter(OMNIGLOT_NPZ))).write_bytes(b"")
    assert data_missing(notebook["fig7_learned_training_set"]) == []
    assert data_missing(notebook["fig9_omniglot_sharing"]) == []


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


def test_a_failed_save_figure_writes_none_of_the_three(tmp_path, monkeypatch):
    fig = plt.figure()
    savefig = fig.savefig

    def pdf_fails(f, format):
        if format == "pdf":
            raise OSError("disk full")
        savefig(f, format=format)

    monkeypatch.setattr(fig, "savefig", pdf_fails)
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, tmp_path, "half", {"x": 1})
    plt.close(fig)
    assert list(tmp_path.iterdir()) == []


# A notebook run can neither overwrite nor fake the figures (issue 13, item 2)

def tiny_notebook(path, *sources, tagged=True):
    """A notebook of code cells; the first is the parameters cell (tagged unless told not)."""
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    if tagged:
        nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


SAVES = ("import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
         "from reproducer.plotting import save_figure\n"
         "save_figure(plt.figure(), output_dir, 'tiny', {'scale': scale})")


def run_failing(*args):
    from reproducer.run_notebook import run
    with pytest.raises(SystemExit) as failure:
        run(*args)
    message = str(failure.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_a_notebook_without_parameters_tag_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    notebook = tiny_notebook(tmp_path / "untagged.ipynb",
                             f"scale = 'paper'\noutput_dir = 'figures'\nopen({str(marker)!r}, 'w')",
                             tagged=False)
    message = run_failing(notebook, tmp_path / "executed.ipynb", "smoke", tmp_path / "out", "tiny")
    assert str(notebook) in message and "parameters" in message and "tag" in message
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_a_run_that_fails_after_saving_leaves_no_new_outputs(tmp_path):
    out = tmp_path / "figures"
    out.mkdir()
    (out / "tiny.png").write_bytes(b"old")
    notebook = tiny_notebook(tmp_path / "fails.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
                             SAVES, "raise RuntimeError('after the figure')")
    message = run_failing(notebook, tmp_path / "executed.ipynb", "smoke", out, "tiny")
    assert str(notebook) in message and "cell 4" in message and "after the figure" in message
    assert sorted(p.name for p in out.iterdir()) == ["tiny.png"]
    assert (out / "tiny.png").read_bytes() == b"old"


def test_a_successful_run_moves_all_outputs_into_place(tmp_path):
    from reproducer.run_notebook import run
    out = tmp_path / "figures"
    notebook = tiny_notebook(tmp_path / "ok.ipynb", "scale = 'paper'\noutput_dir = 'figures'", SAVES)
    run(notebook, tmp_path / "executed.ipynb", "smoke", out, "tiny")
    assert sorted(p.name for p in out.iterdir()) == ["tiny.json", "tiny.pdf", "tiny.png"]
    data = json.loads((out / "tiny.json").read_text())
    assert data.pop("provenance")["scale"] == "smoke" and data == {"scale": "smoke"}


def test_a_notebook_that_writes_no_figure_fails_and_leaves_nothing(tmp_path):
    out = tmp_path / "figures"
    notebook = tiny_notebook(tmp_path / "silent.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
                             SAVES)
    message = run_failing(notebook, tmp_path / "executed.ipynb", "smoke", out, "other")
    assert "other.png" in message
    assert list(out.iterdir()) == []


def test_missing_notebook_one_line(tmp_path):
    message = run_failing(tmp_path / "nope.ipynb", tmp_path / "e.ipynb", "smoke", tmp_path)
    assert "nope.ipynb" in message and "no such notebook" in message


def test_not_a_notebook_one_line(tmp_path):
    fake = tmp_path / "fake.ipynb"
    fake.write_text("print('hello')\n")
    message = run_failing(fake, tmp_path / "e.ipynb", "smoke", tmp_path)
    assert "fake.ipynb" in message and "not a Jupyter notebook" in message


def test_output_path_that_is_a_file_one_line(tmp_path):
    notebook = tiny_notebook(tmp_path / "ok.ipynb", "scale = 'paper'\noutput_dir = 'figures'", SAVES)
    (tmp_path / "figures").write_text("a file")
    message = run_failing(notebook, tmp_path / "e.ipynb", "smoke", tmp_path / "figures", "tiny")
    assert "ok.ipynb" in message and "is a file" in message


def test_dead_kernel_one_line_naming_notebook_and_cell(tmp_path):
    out = tmp_path / "figures"
    notebook = tiny_notebook(tmp_path / "dies.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
                             SAVES, "import os\nos._exit(1)")
    message = run_failing(notebook, tmp_path / "executed.ipynb", "smoke", out, "tiny")
    assert "dies.ipynb" in message and "kernel died" in message and "cell 4" in message
    assert list(out.iterdir()) == []


def test_makefile_deletes_targets_of_failed_recipes_but_never_figures():
    assert re.search(r"^\.DELETE_ON_ERROR:", (ROOT / "Makefile").read_text(), re.M)
    assert re.search(r"^\.PRECIOUS: \$\(OUTPUTS\)", (ROOT / "Makefile").read_text(), re.M)


# Run by hand the way Jupyter does (issue 14)

def files_outside_build():
    skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints"}
    found = {}
    for path in ROOT.rglob("*"):
        if not skip.intersection(path.relative_to(ROOT).parts) and path.is_file():
            found[path] = path.stat().st_mtime_ns
    return found


def test_a_notebook_run_by_hand_writes_only_under_build(monkeypatch):
    """Working folder notebooks/, no injected parameters, REPRODUCER_SCALE=smoke as a student
    would set it: the figure lands in the repository's build/, nothing else changes."""
    import nbclient
    import nbformat
    monkeypatch.setenv("REPRODUCER_SCALE", "smoke")
    monkeypatch.delenv("REPRODUCER_TEXT_PROGRESS", raising=False)
    notebook = ROOT / "notebooks" / "fig1_toy_meta_learning.ipynb"
    before = files_outside_build()
    nb = nbformat.read(notebook, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    assert files_outside_build() == before
    written = json.loads((ROOT / "build" / "by-hand" / "fig1_toy_meta_learning.json").read_text())
    assert written["scale"] == "smoke"
