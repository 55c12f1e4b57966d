"""Course assignments (notebooks/assignments/, otter-grader's format), tested as students and
graders meet them: `make assignments` builds them; each autograder zip grades in a fresh
virtual environment made only from the zip's own requirements (as Gradescope does), giving
the solution full marks and a wrong submission its expected partial score; every plausible
wrong answer in the catalogue below fails a public check that says what is wrong; the public
checks run in a renamed copy of the student notebook; no solution or hidden check reaches
the students."""
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = sorted((ROOT / "notebooks" / "assignments").glob("*.ipynb"))
NEEDS_MNIST = {"a3_learning_schedules", "a4_learned_training_set"}
HAVE_MNIST = bool(os.environ.get("REPRODUCER_DATA")) or \
    Path.home().joinpath(".cache", "reproducer", "mnist").exists()
GRADER_HOME = "/autograder/source/"       # where Gradescope and `otter grade` unpack the zip

# Plausible wrong answers, per question: (question, what the student did, text of the
# solution, what the student wrote instead, words the failing public check must say).
WRONG = {
    "a1_exact_arithmetic": [
        ("q1", "forgets the digit the buffer gives back", "c = c + i % n", "c = c", "loses information"),
        ("q1", "makes room for a digit base n instead of base d", "i = i * d + c % d", "i = i * n + c % d",
         "loses information"),
        ("q1", "divides rounding towards zero", "c = c // d * n", "c = int(c / d) * n", "loses information"),
        ("q1", "divides with /", "c = c // d * n", "c = c / d * n", "two Python ints"),
        ("q2", "undoes the steps in multiply's order", "i = i * n + c % n      # give",
         "i = i * d + c % d      # give", "does not undo multiply"),
        ("q2", "forgets the digit that the division dropped", "c = c + i % d", "c = c", "does not undo multiply"),
        ("q3", "measures the buffer after the backward pass", "buffer_bits = forward_bits",
         "buffer_bits = i.bit_length()", "after the forward pass"),
        ("q3", "starts the exact pass with a non-empty buffer", "c, i = c0, 0", "c, i = c0, 1", "empty the buffer"),
        ("q3", "skips the float64 backward loop", "v = v / 0.9", "v = v", "round trip"),
        ("q3", "measures the float error in units of 2^-52", "float_error = abs(v - v0)",
         "float_error = round(abs(v - v0) * 2 ** 52)", "round trip"),
    ],
    "a2_reverse_pass": [
        ("q1", "drops the gradient term from d_gamma", "d_gammas[t] = np.dot(d_v, v + g)",
         "d_gammas[t] = np.dot(d_v, v)", "d_gammas"),
        ("q1", "reads d_alphas after undoing the position step", "d_alphas[t] = np.dot(d_w, v)\n",
         "d_alphas[t] = np.dot(d_w, v - (1 - gammas[t]) * grad_w(w - alphas[t] * v, theta, t))\n", "d_alphas"),
        ("q1", "forgets the factor (1 - gamma) in d_w", "d_w = d_w - (1 - gammas[t]) * hvp_w",
         "d_w = d_w - hvp_w", "d_w (the gradient with respect to w0)"),
        ("q1", "forgets to decay d_v", "d_v = gammas[t] * d_v", "d_v = d_v", "disagrees with a central finite"),
        ("q1", "undoes the momentum step with the wrong sign", "v = (v + (1 - gammas[t]) * g) / gammas[t]",
         "v = (v - (1 - gammas[t]) * g) / gammas[t]", "land back on w0"),
        ("q1", "flips the sign of d_theta", "d_theta = d_theta - (1 - gammas[t])",
         "d_theta = d_theta + (1 - gammas[t])", "d_theta"),
        ("q1", "indexes past the end (and so raises)", "d_alphas[t] = np.dot(d_w, v)\n",
         "d_alphas[t + 1] = np.dot(d_w, v)\n", "index 30 is out of bounds"),
        ("q2", "perturbs every step size", "up[10] += eps\ndown[10] -= eps", "up += eps\ndown -= eps",
         "differ by a relative"),
        ("q2", "divides by eps instead of 2 eps", ") / (2 * eps)", ") / eps", "differ by a relative"),
        ("q2", "perturbs alphas itself", "up, down = alphas.copy(), alphas.copy()", "up, down = alphas, alphas",
         "differ by a relative"),
        ("q2", "forgets the absolute value", "relative_difference = abs(fd_d_alpha - d_alphas[10])",
         "relative_difference = (fd_d_alpha - d_alphas[10])", "never negative"),
        ("q3", "differentiates with respect to gammas", "return meta_loss(sgd_momentum(loss, w0, alphas, gammas, theta))",
         "return meta_loss(sgd_momentum(loss, w0, 0.1 * np.ones(T), 0.8 + 0 * alphas, theta))", "agreement = "),
        ("q3", "forgets to call the gradient", "library_d_alphas = grad(exact_meta_loss)(alphas)",
         "library_d_alphas = grad(exact_meta_loss)", "shape (T,)"),
    ],
    "a3_learning_schedules": [
        ("q1", "forgets the exponential", "alphas = np.exp(log_alphas[phase])", "alphas = log_alphas[phase]",
         "exp(log_alphas)"),
        ("q1", "measures the loss on the training set",
         "return cross_entropy(mlp_predict(layout, w_T, x_valid), y_valid)",
         "return cross_entropy(mlp_predict(layout, w_T, x_train), y_train)", "validation set"),
        ("q1", "uses only the first phase", "alphas = np.exp(log_alphas[phase])", "alphas = np.exp(log_alphas[0 * phase])",
         "hypergradient has zeros"),
        ("q2", "steps up the hypergradient", "log_alphas = log_alphas - meta_step", "log_alphas = log_alphas + meta_step",
         "should go down"),
        ("q2", "keeps the initial schedule", "learned = log_alphas", "learned = initial", "after the last update"),
        ("q3", "takes the smallest step size", "largest = layout.names[int(np.argmax(step_sizes[0]))]",
         "largest = layout.names[int(np.argmin(step_sizes[0]))]", "larger step size in phase 0"),
        ("q3", "reports log step sizes", "step_sizes = np.exp(learned)", "step_sizes = learned", "not their logarithms"),
    ],
    "a4_learned_training_set": [
        ("q1", "uses theta[0] as the penalty", "penalty = np.exp(theta[0]) * np.sum(w ** 2)",
         "penalty = theta[0] * np.sum(w ** 2)", "negligible"),
        ("q1", "forgets the penalty", "labels) + penalty", "labels)", "does not depend on theta[0]"),
        ("q1", "reshapes the pixels the wrong way", "images = np.reshape(theta[1:], (10, 784))",
         "images = np.reshape(theta[1:], (784, 10)).T", "ten real digits"),
        ("q1", "measures the loss on the training images",
         "return cross_entropy(mlp_predict(layout, w_T, x_valid), y_valid)",
         "return training_loss(w_T, theta, 0)", "not on the training images"),
        ("q2", "steps up the hypergradient", "theta = theta - meta_step * g", "theta = theta + meta_step * g",
         "well under half"),
        ("q2", "keeps the initial theta", "learned = theta  #", "learned = theta0  #", "after the last update"),
        ("q3", "reports the log penalty", "learned_penalty = np.exp(learned[0])", "learned_penalty = learned[0]",
         "positive number"),
        ("q3", "keeps the penalty among the pixels", "np.reshape(learned[1:], (10, 28, 28))",
         "np.reshape(learned[:-1], (10, 28, 28))", "pixels of learned"),
    ],
}

# One wrong submission per assignment, graded by the zip: (solution text, wrong text,
# expected score per question). Points are shared equally by a question's test cases.
WRONG_SUBMISSION = {
    # q3's public check of buffer_bits and its hidden exact count fail: 3 of 5 cases pass
    "a1_exact_arithmetic": ("buffer_bits = forward_bits", "buffer_bits = i.bit_length()",
                            {"q1": 2, "q2": 2, "q3": 3 * 3 / 5}),
    # the issue's example: q1's d_gammas check and hidden autograd comparison fail: 3 of 5
    "a2_reverse_pass": ("np.dot(d_v, v + g)", "np.dot(d_v, v)", {"q1": 4 * 3 / 5, "q2": 2, "q3": 2}),
    # q3's public check of `largest` fails, its other public and its hidden case pass: 2 of 3
    "a3_learning_schedules": ("np.argmax(step_sizes[0])", "np.argmin(step_sizes[0])",
                              {"q1": 2, "q2": 3, "q3": 2 * 2 / 3}),
    # q3's public penalty check and hidden penalty check fail, the test errors pass: 1 of 3
    "a4_learned_training_set": ("learned_penalty = np.exp(learned[0])", "learned_penalty = learned[0]",
                                {"q1": 3, "q2": 2, "q3": 2 * 1 / 3}),
}


def text(cell):
    return "".join(cell["source"])


def read(notebook):
    return json.loads(Path(notebook).read_text())


def questions_of(notebook):
    return [re.search(r"name: (\w+)", text(c)).group(1) for c in read(notebook)["cells"]
            if c["cell_type"] == "raw" and text(c).startswith("# BEGIN QUESTION")]


def needs_data(name):
    if name in NEEDS_MNIST and not HAVE_MNIST:
        pytest.skip("MNIST not available (set REPRODUCER_DATA)")


def for_each_assignment():
    return pytest.mark.parametrize("notebook", ASSIGNMENTS, ids=lambda p: p.stem)


def solution_lines(notebook):
    """The lines only the solutions have: inside BEGIN/END SOLUTION, and right-hand sides
    of `name = value  # SOLUTION` lines."""
    found = []
    for cell in read(notebook)["cells"]:
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
    for cell in read(notebook)["cells"]:
        if cell["cell_type"] == "code" and re.match(r"#\s*HIDDEN", text(cell)):
            found += [l.strip() for l in text(cell).splitlines()[1:] if len(l.strip()) > 24]
    return found


def shipped_text(path):
    """What a student gets in a file: for a notebook its code and metadata; the Markdown
    prompts may well describe the algorithm."""
    if path.suffix != ".ipynb":
        return path.read_text(errors="replace")
    nb = read(path)
    return "\n".join([text(c) for c in nb["cells"] if c["cell_type"] != "markdown"]
                     + [json.dumps(nb["metadata"])])


def with_wrong_answer(nb, solution, wrong):
    """nb (a dict) with `solution` replaced by `wrong` in the one code cell that has it."""
    nb = copy.deepcopy(nb)
    cells = [c for c in nb["cells"] if c["cell_type"] == "code" and solution in text(c)]
    assert len(cells) == 1, f"{solution!r} should be in exactly one code cell"
    cells[0]["source"] = text(cells[0]).replace(solution, wrong)
    return nb


# ---------------------------------------------------------------- built by make assignments

@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """`make assignments` into a temporary folder (two at a time: the machine has two cores)."""
    out = tmp_path_factory.mktemp("assignments")
    start = time.perf_counter()
    subprocess.run(["make", "-j2", "assignments", f"ASSIGNMENTS_OUT={out}"], cwd=ROOT, check=True,
                   capture_output=True, timeout=1200)
    print(f"\nmake assignments: {time.perf_counter() - start:.0f} s")
    return out


def test_there_are_four_assignments():
    assert [nb.stem[:2] for nb in ASSIGNMENTS] == ["a1", "a2", "a3", "a4"]


@for_each_assignment()
def test_every_question_has_public_and_hidden_checks(notebook):
    assert len(questions_of(notebook)) >= 3
    assert len(hidden_lines(notebook)) > 0 and len(solution_lines(notebook)) > 0


@for_each_assignment()
def test_every_question_has_wrong_answers_in_the_catalogue(notebook):
    assert sorted({q for q, *_ in WRONG[notebook.stem]}) == sorted(questions_of(notebook))
    assert notebook.stem in WRONG_SUBMISSION


def test_make_assignments_builds_every_assignment_from_assignments_dir(tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    shutil.copy(ASSIGNMENTS[0], private / "x1_private.ipynb")
    plan = subprocess.run(["make", "-nB", "assignments", f"ASSIGNMENTS_DIR={private}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert f"otter assign --no-pdfs build/assignments/.stage/x1_private.ipynb build/assignments/x1_private" in plan
    assert ASSIGNMENTS[0].stem not in plan      # only what is in ASSIGNMENTS_DIR
    plan = subprocess.run(["make", "-nB", "assignments"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    for notebook in ASSIGNMENTS:
        assert f"build/assignments/{notebook.stem}/autograder/autograder.zip" in plan
    assert "pip wheel --quiet --no-deps" in plan


@for_each_assignment()
def test_student_version_has_no_solutions_and_no_hidden_checks(built, notebook):
    student = built / notebook.stem / "student"
    assert sorted(p.name for p in (student / "tests").glob("*.py")) == \
        sorted(f"{q}.py" for q in questions_of(notebook))
    shipped = "\n".join(shipped_text(p) for p in student.rglob("*") if p.is_file())
    for line in solution_lines(notebook) + hidden_lines(notebook):
        assert line not in shipped, line
    assert "hidden': True" not in shipped and '"hidden": true' not in shipped


@for_each_assignment()
def test_autograder_zip_installs_this_package_at_the_pinned_versions(built, notebook):
    """The zip's environment names the wheel it bundles (never `reproducer` from the package
    index, an unrelated empty project) and pins what it needs at requirements.txt's versions."""
    python, pip = zip_environment(built / notebook.stem / "autograder" / "autograder.zip")
    pins = dict(l.split("#")[0].strip().split("==") for l in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in l.split("#")[0])
    wheels = [p for p in pip if p.endswith(".whl")]
    assert wheels == [GRADER_HOME + "files/" + Path(wheels[0]).name] and Path(wheels[0]).name.startswith("reproducer-")
    with zipfile.ZipFile(built / notebook.stem / "autograder" / "autograder.zip") as z:
        assert "files/" + Path(wheels[0]).name in z.namelist()
    for name in ["numpy", "autograd", "scipy", "otter-grader[grading,plugins]"]:
        assert f"{name}=={pins[name.split('[')[0]]}" in pip, name
    assert not [p for p in pip if p.split("=")[0].strip() == "reproducer"]
    assert python == "3.11"


def zip_environment(zip_path):
    """(Python version, pip requirements) of the environment.yml that the zip's setup.sh installs."""
    with zipfile.ZipFile(zip_path) as z:
        env = yaml.safe_load(z.read("environment.yml"))
    python = next(d.split("=", 1)[1] for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return python, tuple(pip)


# ---------------------------------------------------------------- graded where graders are

@pytest.fixture(scope="session")
def grader_env(built, tmp_path_factory):
    """A fresh virtual environment (no system or repository packages) made only from the
    zips' own requirements, as Gradescope's setup.sh makes it: one serves all four zips."""
    zips = [built / nb.stem / "autograder" / "autograder.zip" for nb in ASSIGNMENTS]
    environments = {zip_environment(z) for z in zips}
    assert len(environments) == 1, environments
    (python, pip), = environments
    root = tmp_path_factory.mktemp("grader")
    with zipfile.ZipFile(zips[0]) as z:
        z.extractall(root / "source")
    requirements = [p.replace(GRADER_HOME, f"{root / 'source'}/") for p in pip]
    start = time.perf_counter()
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    grader_python = venv / "bin" / "python"
    version = subprocess.run([str(grader_python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if version != python:
        pytest.skip(f"the zips ask for Python {python}; this machine's is {version}")
    # --no-compile: byte-compiling some 150 packages is much of the time, and imports compile anyway
    subprocess.run([str(grader_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-compile", *requirements], check=True, capture_output=True, timeout=1800, cwd=root)
    print(f"\nfresh grader environment: {time.perf_counter() - start:.0f} s")
    return venv


def clean_env(venv):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    return env


GRADE = """
import json, sys
from otter.run import main
for submission, autograder, out in json.loads(sys.argv[1]):
    main(submission, autograder=autograder, output_dir=out, no_logo=True)
"""


def grade_all(venv, jobs, workdir):
    """Grade (submission, zip) pairs with otter run's own code, in the fresh environment,
    two processes at a time; returns {submission: {question: (score, max)}}."""
    script = workdir / "grade.py"
    script.write_text(GRADE)
    outs = {}
    for k, (submission, zip_path) in enumerate(jobs):
        outs[submission] = workdir / f"results-{k}"
        outs[submission].mkdir()
    halves = [jobs[0::2], jobs[1::2]]

    def run(half):
        args = json.dumps([[str(s), str(z), str(outs[s])] for s, z in half])
        return subprocess.run([str(venv / "bin" / "python"), str(script), args], cwd=workdir,
                              env=clean_env(venv), capture_output=True, text=True, timeout=1800)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in pool.map(run, halves):
            assert done.returncode == 0, done.stderr[-3000:]
    scores = {}
    for submission, out in outs.items():
        results = json.loads((out / "results.json").read_text())
        scores[submission] = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"]
                              if t.get("max_score") is not None}
    return scores


@pytest.fixture(scope="session")
def graded(built, grader_env, tmp_path_factory):
    """Each assignment's solution, and its wrong submission, graded by its zip in the fresh
    environment, from a folder outside the repository."""
    workdir = tmp_path_factory.mktemp("graded")
    jobs, which = [], {}
    for nb in ASSIGNMENTS:
        if nb.stem in NEEDS_MNIST and not HAVE_MNIST:
            continue
        zip_path = built / nb.stem / "autograder" / "autograder.zip"
        solution = built / nb.stem / "autograder" / f"{nb.stem}.ipynb"
        solution_text, wrong_text, _ = WRONG_SUBMISSION[nb.stem]
        wrong = workdir / f"{nb.stem}-wrong" / f"{nb.stem}.ipynb"
        wrong.parent.mkdir()
        wrong.write_text(json.dumps(with_wrong_answer(read(solution), solution_text, wrong_text)))
        jobs += [(solution, zip_path), (wrong, zip_path)]
        which[nb.stem] = {"solution": solution, "wrong": wrong}
    start = time.perf_counter()
    scores = grade_all(grader_env, jobs, workdir)
    print(f"\ngraded {len(jobs)} submissions in the fresh environment: {time.perf_counter() - start:.0f} s")
    return {name: {kind: scores[path] for kind, path in paths.items()} for name, paths in which.items()}


def test_grader_environment_imports_the_bundled_wheel(grader_env, tmp_path):
    where = subprocess.run([str(grader_env / "bin" / "python"), "-c",
                            "import reproducer, numpy, autograd; print(reproducer.__file__, numpy.__version__)"],
                           cwd=tmp_path, env=clean_env(grader_env), capture_output=True, text=True, check=True).stdout
    assert str(grader_env) in where and str(ROOT) not in where


@for_each_assignment()
def test_solution_gets_full_marks_from_the_zip_in_a_fresh_environment(graded, notebook):
    needs_data(notebook.stem)
    scores = graded[notebook.stem]["solution"]
    assert sorted(scores) == sorted(questions_of(notebook))
    assert all(score == full for score, full in scores.values()), scores


@for_each_assignment()
def test_wrong_submission_gets_its_expected_partial_score(graded, notebook):
    needs_data(notebook.stem)
    scores = graded[notebook.stem]["wrong"]
    expected = WRONG_SUBMISSION[notebook.stem][2]
    assert {q: s for q, (s, _) in scores.items()} == pytest.approx(expected, abs=1e-4), scores  # otter rounds to 5 places


# ---------------------------------------------------------------- public checks, in-process

def run_cells(cells, env):
    """Execute code cells in env as a notebook would (an error stops that cell only); the
    cells that start otter are skipped. Returns the errors."""
    errors = []
    for source in cells:
        if "import otter" in source or "grader.check" in source:
            continue
        try:
            with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                exec(compile(source, "<cell>", "exec"), env)
        except Exception as error:      # noqa: BLE001, as a notebook cell would
            errors.append(error)
    return errors


def code_cells(nb):
    return [text(c) for c in nb["cells"] if c["cell_type"] == "code"]


def run_tests(test_files, env):
    """{question: (score, possible, summary)} of otter's own test runner on env."""
    from otter.test_files import OKTestFile
    results = {}
    for path in test_files:
        test = OKTestFile.from_file(str(path))
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            test.run(env)
        results[test.name] = (test.score, test.possible, test.summary())
    return results


@pytest.fixture(scope="module")
def snapshots(built):
    """For each assignment, the solution notebook's code cells and, before each of them, a
    copy of the variables the solution had (arrays copied, so a wrong answer that changes one
    in place cannot spoil the next)."""
    cache = {}

    def get(name):
        if name not in cache:
            cells = code_cells(read(built / name / "autograder" / f"{name}.ipynb"))
            env, before = {"__name__": "__main__"}, []
            cwd = os.getcwd()
            os.chdir(built / name / "autograder")
            try:
                for source in cells:
                    before.append({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in env.items()})
                    assert not run_cells([source], env), source
            finally:
                os.chdir(cwd)
            cache[name] = (cells, before)
        return cache[name]
    return get


def catalogue():
    return [pytest.param(name, *entry, id=f"{name[:2]}-{entry[0]}-{entry[1].replace(' ', '_')}")
            for name, entries in WRONG.items() for entry in entries]


@pytest.mark.parametrize("name, question, what, solution, wrong, message", catalogue())
def test_wrong_answer_fails_a_public_check_that_says_why(built, snapshots, name, question, what, solution,
                                                         wrong, message):
    """Each plausible wrong answer fails at least one public check (those the student runs),
    with a message that names the property that failed."""
    needs_data(name)
    cells, before = snapshots(name)
    where = [k for k, source in enumerate(cells) if solution in source]
    assert len(where) == 1, f"{solution!r} should be in exactly one code cell"
    env = dict(before[where[0]])
    run_cells([cells[where[0]].replace(solution, wrong)], env)
    score, possible, summary = run_tests([built / name / "student" / "tests" / f"{question}.py"], env)[question]
    assert score < possible, f"{what}: passes every public check of {question}"
    assert message in summary, summary
    assert "AssertionError\n" not in summary, summary       # every failed assert says what failed


def test_submission_that_raises_shows_its_error_and_gets_nothing_for_what_it_never_computed(built, snapshots):
    """A reverse pass that raises: its own error appears in q1's checks, and no question whose
    values depend on it collects points from checks of values it never computed."""
    name = "a2_reverse_pass"
    cells, before = snapshots(name)
    k = next(k for k, source in enumerate(cells) if "def reverse" in source)
    env = dict(before[k])
    broken = cells[k].replace("d_alphas[t] = np.dot(d_w, v)\n", "d_alphas[t + 1] = np.dot(d_w, v)\n")
    run_cells([broken] + cells[k + 1:], env)
    results = run_tests(sorted((built / name / "autograder" / "tests").glob("*.py")), env)
    assert "IndexError: index 30 is out of bounds" in results["q1"][2]
    assert {q: score for q, (score, _, _) in results.items()} == {"q1": 0, "q2": 0, "q3": 0}


@for_each_assignment()
def test_untouched_student_version_scores_zero_on_every_check(built, notebook):
    needs_data(notebook.stem)
    student = built / notebook.stem / "student"
    env = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(student)
    try:
        run_cells(code_cells(read(student / f"{notebook.stem}.ipynb")), env)
    finally:
        os.chdir(cwd)
    results = run_tests(sorted((built / notebook.stem / "autograder" / "tests").glob("*.py")), env)
    assert sorted(results) == sorted(questions_of(notebook))
    assert all(score == 0 for score, _, _ in results.values()), results


# ---------------------------------------------------------------- where students are

def filled_in(student_nb, solution_nb):
    """The student notebook with the solution's code in every answer cell."""
    student, solution = copy.deepcopy(read(student_nb)), read(solution_nb)
    assert len(student["cells"]) == len(solution["cells"])
    for mine, theirs in zip(student["cells"], solution["cells"]):
        if "otter_answer_cell" in mine["metadata"].get("tags", []):
            mine["source"] = theirs["source"]
        else:
            assert text(mine) == text(theirs)
    return student


@pytest.mark.parametrize("name", ["a1_exact_arithmetic", "a2_reverse_pass"])
def test_public_checks_run_in_a_renamed_copy_of_the_student_notebook(built, tmp_path, name):
    """A student's "Copy of NAME.ipynb" (Colab's name for a copy), solutions filled in, in a
    folder with other notebooks: every grader.check passes, no cell raises."""
    import nbclient
    import nbformat
    student = built / name / "student"
    shutil.copytree(student / "tests", tmp_path / "tests")
    shutil.copy(student / f"{name}.ipynb", tmp_path / "another notebook.ipynb")
    copy_path = tmp_path / f"Copy of {name}.ipynb"
    copy_path.write_text(json.dumps(filled_in(student / f"{name}.ipynb", built / name / "autograder" / f"{name}.ipynb")))
    nb = nbformat.read(copy_path, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    checks = [c for c in nb.cells if c.cell_type == "code" and "grader.check(" in c.source]
    assert len(checks) == len(questions_of(ASSIGNMENTS[[a.stem for a in ASSIGNMENTS].index(name)]))
    for cell in nb.cells:
        assert not [o for o in cell.get("outputs", []) if o.output_type == "error"], cell.source
    for cell in checks:
        shown = json.dumps(cell.outputs)
        assert "passed" in shown and "failed" not in shown, shown


@for_each_assignment()
def test_student_version_runs_without_errors_before_the_first_gap(built, notebook, tmp_path):
    import nbclient
    import nbformat
    needs_data(notebook.stem)
    student = built / notebook.stem / "student"
    shutil.copytree(student, tmp_path / "student")
    nb = nbformat.read(tmp_path / "student" / f"{notebook.stem}.ipynb", as_version=4)
    first_gap = next(i for i, c in enumerate(nb.cells) if "otter_answer_cell" in c.metadata.get("tags", []))
    assert first_gap > 0 and "..." in nb.cells[first_gap].source
    nb.cells = nb.cells[:first_gap]           # the grading tests ran the rest
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path / "student")}}).execute()
    for cell in nb.cells:
        assert not [o for o in cell.get("outputs", []) if o.output_type == "error"], cell.source
