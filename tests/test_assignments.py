"""Course assignments (notebooks/assignments/, otter-grader's format): built with otter
assign, the solutions pass every check, the student versions run unchanged fail every
question's checks without other errors before the first gap, and neither solutions nor
hidden checks reach the students."""
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted((ROOT / "notebooks" / "assignments").glob("*.ipynb"))
OTTER = Path(sys.executable).with_name("otter")
NEEDS_MNIST = {"a3_learning_schedules"}
HAVE_MNIST = bool(os.environ.get("REPRODUCER_DATA")) or \
    Path.home().joinpath(".cache", "reproducer", "mnist").exists()


def source_cells(notebook):
    return json.loads(notebook.read_text())["cells"]


def text(cell):
    return "".join(cell["source"])


def solution_lines(notebook):
    """The lines only the solutions have: inside BEGIN/END SOLUTION, and right-hand sides
    of `name = value  # SOLUTION` lines."""
    found = []
    for cell in source_cells(notebook):
        if cell["cell_type"] != "code":
            continue
        inside = False
        for line in text(cell).splitlines():
            stripped = line.strip()
            if stripped.endswith("# BEGIN SOLUTION"):
                inside = True
            elif stripped.endswith("# END SOLUTION"):
                inside = False
            elif inside and stripped and not stripped.startswith("#"):
                found.append(stripped.split("  #")[0])
            elif re.search(r"#\s*SOLUTION$", stripped):
                found.append(stripped.split("=", 1)[1].split("#")[0].strip())
    return [line for line in found if len(line) > 12]


def hidden_lines(notebook):
    found = []
    for cell in source_cells(notebook):
        if cell["cell_type"] == "code" and re.match(r"#\s*HIDDEN", text(cell)):
            found += [l.strip() for l in text(cell).splitlines()[1:] if len(l.strip()) > 12]
    return found


def shipped_text(path):
    """What a student gets in a file: for a notebook its code and its metadata (where otter
    keeps the public checks); the Markdown prompts may well describe the algorithm."""
    if path.suffix != ".ipynb":
        return path.read_text(errors="replace")
    nb = json.loads(path.read_text())
    return "\n".join([text(c) for c in nb["cells"] if c["cell_type"] != "markdown"]
                     + [json.dumps(nb["metadata"])])


def otter_run(notebook, zip_path, out):
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(OTTER), "run", "--no-logo", "-a", str(zip_path), "-o", str(out), str(notebook)],
                   check=True, capture_output=True, timeout=600, cwd=notebook.parent)
    results = json.loads((out / "results.json").read_text())
    return {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "max_score" in t
            and t.get("max_score") is not None}


def build_and_grade(notebook, workdir):
    """otter assign into workdir, then grade the solution and the untouched student version."""
    name = notebook.stem
    dist = workdir / name
    subprocess.run([str(OTTER), "assign", "--no-pdfs", str(notebook), str(dist)], check=True,
                   capture_output=True, timeout=600)
    zip_path = next((dist / "autograder").glob("*.zip"))
    return {"dist": dist,
            "solution": otter_run(dist / "autograder" / f"{name}.ipynb", zip_path, workdir / f"{name}-solution"),
            "student": otter_run(dist / "student" / f"{name}.ipynb", zip_path, workdir / f"{name}-student")}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every assignment built and graded, two at a time (the machine has two cores)."""
    workdir = tmp_path_factory.mktemp("assignments")
    runnable = [nb for nb in ASSIGNMENTS if nb.stem not in NEEDS_MNIST or HAVE_MNIST]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = pool.map(lambda nb: build_and_grade(nb, workdir), runnable)
        return {nb.stem: result for nb, result in zip(runnable, results)}


def for_each_assignment():
    return pytest.mark.parametrize("notebook", ASSIGNMENTS, ids=lambda p: p.stem)


def result_of(graded, notebook):
    if notebook.stem not in graded:
        pytest.skip("MNIST not available (set REPRODUCER_DATA)")
    return graded[notebook.stem]


def test_there_are_three_or_four_assignments():
    assert 3 <= len(ASSIGNMENTS) <= 4


@for_each_assignment()
def test_every_question_has_public_and_hidden_checks(notebook):
    cells = source_cells(notebook)
    questions = [c for c in cells if c["cell_type"] == "raw" and text(c).startswith("# BEGIN QUESTION")]
    assert len(questions) >= 3
    assert len(hidden_lines(notebook)) > 0 and len(solution_lines(notebook)) > 0


@for_each_assignment()
def test_solutions_pass_every_check(graded, notebook):
    scores = result_of(graded, notebook)["solution"]
    assert scores and all(score == full for score, full in scores.values()), scores


@for_each_assignment()
def test_student_version_fails_every_question(graded, notebook):
    scores = result_of(graded, notebook)["student"]
    questions = [re.search(r"name: (\w+)", text(c)).group(1) for c in source_cells(notebook)
                 if c["cell_type"] == "raw" and text(c).startswith("# BEGIN QUESTION")]
    assert sorted(scores) == sorted(questions)
    assert all(score == 0 for score, _ in scores.values()), scores


@for_each_assignment()
def test_student_version_has_no_solutions_and_no_hidden_checks(graded, notebook):
    dist = result_of(graded, notebook)["dist"] / "student"
    shipped = "\n".join(shipped_text(p) for p in dist.rglob("*") if p.is_file())
    for line in solution_lines(notebook) + hidden_lines(notebook):
        assert line not in shipped, line


@for_each_assignment()
def test_student_version_runs_without_errors_before_the_first_gap(graded, notebook, tmp_path):
    import nbclient
    import nbformat
    student = result_of(graded, notebook)["dist"] / "student" / f"{notebook.stem}.ipynb"
    shutil.copy(student, tmp_path)
    nb = nbformat.read(tmp_path / student.name, as_version=4)
    first_gap = next(i for i, c in enumerate(nb.cells) if "otter_answer_cell" in c.metadata.get("tags", []))
    assert first_gap > 0 and "..." in nb.cells[first_gap].source
    nb.cells = nb.cells[:first_gap]           # the grading runs above ran the rest
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells:
        assert not [o for o in cell.get("outputs", []) if o.output_type == "error"], cell.source


def test_make_assignments_builds_every_assignment():
    plan = subprocess.run(["make", "-nB", "assignments"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    for notebook in ASSIGNMENTS:
        assert f"otter assign --no-pdfs notebooks/assignments/{notebook.name} build/assignments/{notebook.stem}" in plan
        assert f"build/assignments/{notebook.stem}/autograder/autograder.zip" in plan
