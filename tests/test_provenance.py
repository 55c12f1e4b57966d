"""Every figure records what made it, and make decides by content which notebooks to rerun
(issue 22, items 1 and 3; issue 18, items 3 and 5): provenance in the figure JSON, the
staleness check (unit and through make in fresh clones), an interrupted make that deletes
nothing, stale staging folders, and a failed write of the executed copy."""
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproducer import provenance
from reproducer.provenance import notebook_hash, reasons_stale

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_notebooks import SAVES, run_failing, tiny_notebook  # noqa: E402


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_run_records_what_made_its_figure(tmp_path, monkeypatch):
    from reproducer.run_notebook import run
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "some.gz").write_bytes(b"digits")
    monkeypatch.setenv("REPRODUCER_DATA", str(data))
    notebook = tiny_notebook(
        tmp_path / "uses.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
        "import os, reproducer.models\nfrom reproducer.authors import stored\n"
        "stored('fig4_initial_hypergradient')\n"
        "open(os.path.join(os.environ['REPRODUCER_DATA'], 'mnist', 'some.gz'), 'rb').read()",
        SAVES, "import reproducer.penalties   # after the last figure: cannot have changed it")
    run(notebook, tmp_path / "executed.ipynb", "smoke", tmp_path / "out", "tiny")
    made = json.loads((tmp_path / "out" / "tiny.json").read_text())["provenance"]
    assert made["notebook_code_sha256"] == notebook_hash(notebook)
    assert made["sources"]["reproducer/models.py"] == sha(ROOT / "reproducer/models.py")
    assert made["sources"]["reproducer/authors_results/fig4_initial_hypergradient.json"] == sha(
        ROOT / "reproducer/authors_results/fig4_initial_hypergradient.json")
    assert not {"reproducer/run_notebook.py", "reproducer/provenance.py",
                "reproducer/penalties.py", "reproducer/claims.py"} & set(made["sources"])
    assert made["data"] == {"mnist/some.gz": {"sha256": sha(data / "mnist" / "some.gz"),
                                              "bytes": 6, "from": "REPRODUCER_DATA"}}
    assert made["scale"] == "smoke" and made["parameters"]["scale"] == "smoke"
    assert made["parameters"]["output_dir"] == str(tmp_path / "out")
    assert len(made["git"]["commit"]) == 40 and isinstance(made["git"]["dirty"], bool)
    assert made["packages"]["numpy"] and made["packages"]["python"].startswith("3.")
    assert made["wall_seconds"] > 0 and made["cores"] >= 1
    assert len(made["load_average"]["start"]) == 3 and made["date"].endswith("Z")


def test_code_edited_during_a_run_is_recorded_as_it_was_when_the_run_began(tmp_path):
    """A long run's figures must not claim code that changed while it ran: the notebook
    rewrites its own code cell mid-run, and the record keeps the hash from the start."""
    from reproducer.run_notebook import run
    notebook = tmp_path / "edits.ipynb"
    edit = ("import json, pathlib\n"
            f"p = pathlib.Path({str(notebook)!r}); nb = json.loads(p.read_text())\n"
            "nb['cells'][1]['source'] = 'x = 2   # edited during the run'\n"
            "p.write_text(json.dumps(nb))")
    tiny_notebook(notebook, "scale = 'paper'\noutput_dir = 'figures'", "x = 1", edit, SAVES)
    before = notebook_hash(notebook)
    run(notebook, tmp_path / "executed.ipynb", "smoke", tmp_path / "out", "tiny")
    assert notebook_hash(notebook) != before                       # the edit happened
    made = json.loads((tmp_path / "out" / "tiny.json").read_text())["provenance"]
    assert made["notebook_code_sha256"] == before


def test_a_module_changed_during_a_run_is_recorded_with_its_hash_at_the_start(tmp_path):
    at_start = provenance.snapshot(ROOT / "notebooks" / "fig1_toy_meta_learning.ipynb")
    assert at_start["package"]["reproducer/models.py"] == sha(ROOT / "reproducer/models.py")
    record = {"sources": {"reproducer/models.py": "hash of the file as edited mid-run"}, "data": {}}
    made = provenance.entry(ROOT / "notebooks" / "fig1_toy_meta_learning.ipynb", "smoke", {}, record,
                            1.0, (0.0, 0.0, 0.0), "2026-12-02T00:00:00Z", at_start)
    assert made["sources"] == {"reproducer/models.py": sha(ROOT / "reproducer/models.py")}
    assert made["git"] == at_start["git"]


# --- the staleness check, on a small tree of its own -----------------------------------------

def fake_tree(tmp_path, monkeypatch):
    """root/notebooks/nb.ipynb, root/reproducer/m.py, data/mnist/d.gz and a figure whose
    provenance records them as they are now."""
    root, data = tmp_path / "root", tmp_path / "data"
    (root / "reproducer").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (data / "mnist").mkdir(parents=True)
    monkeypatch.setenv("REPRODUCER_DATA", str(data))
    monkeypatch.setenv("REPRODUCER_CACHE", str(tmp_path / "cache"))
    (root / "reproducer" / "m.py").write_text("x = 1\n")
    (data / "mnist" / "d.gz").write_bytes(b"data")
    nb = root / "notebooks" / "nb.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["# prose"], "metadata": {}},
        {"cell_type": "code", "source": ["scale = 'paper'"], "metadata": {"tags": ["parameters"]}},
        {"cell_type": "code", "source": ["import m"], "metadata": {}, "outputs": []}]}))
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "nb.png").write_bytes(b"png")
    (figures / "nb.json").write_text(json.dumps({"value": 1, "provenance": {
        "scale": "paper", "notebook_code_sha256": notebook_hash(nb),
        "sources": {"reproducer/m.py": sha(root / "reproducer" / "m.py")},
        "data": {"mnist/d.gz": {"sha256": sha(data / "mnist" / "d.gz")}}}}))
    return root, data, nb, figures


def edit_cell(nb, index, source):
    cells = json.loads(nb.read_text())
    cells["cells"][index]["source"] = [source]
    nb.write_text(json.dumps(cells))


def test_current_until_code_or_data_changes_and_timestamps_say_nothing(tmp_path, monkeypatch):
    root, data, nb, figures = fake_tree(tmp_path, monkeypatch)
    stale = lambda scale="paper": reasons_stale(figures, scale, "nb", ["nb"], root=root)
    assert stale() == []
    for path in (nb, root / "reproducer" / "m.py", data / "mnist" / "d.gz"):
        os.utime(path, (time.time() + 100, time.time() + 100))      # newer than the figure
    assert stale() == []
    edit_cell(nb, 0, "# other prose")                 # markdown cannot change a number
    assert stale() == []
    assert stale("smoke") == ["nb was made at paper scale, not smoke"]
    (root / "reproducer" / "m.py").write_text("x = 2\n")
    assert stale() == ["reproducer/m.py changed"]
    (root / "reproducer" / "m.py").write_text("x = 1\n")
    edit_cell(nb, 2, "import m  # edited")
    assert stale() == ["the code of nb.ipynb changed"]
    edit_cell(nb, 2, "import m")
    (data / "mnist" / "d.gz").write_bytes(b"other data")
    assert stale() == [f"data file {data / 'mnist' / 'd.gz'} changed"]
    (data / "mnist" / "d.gz").unlink()                # absent: downloaded and checksummed
    assert stale() == []
    (root / "reproducer" / "m.py").unlink()
    assert stale() == ["reproducer/m.py is gone"]


def test_no_provenance_missing_or_unreadable_figure_is_stale(tmp_path, monkeypatch):
    root, data, nb, figures = fake_tree(tmp_path, monkeypatch)
    stale = lambda: reasons_stale(figures, "paper", "nb", ["nb"], root=root)
    (figures / "nb.json").write_text(json.dumps({"value": 1}))
    assert stale() == ["nb.json records no provenance (made before it was recorded)"]
    (figures / "nb.json").write_text("{trunc")
    assert stale() == [f"{figures / 'nb.json'} is unreadable"]
    (figures / "nb.png").unlink()
    assert stale() == ["nb not made yet"]


def test_the_make_check_runs_with_the_system_python_alone():
    """make runs provenance.py with -I (no venv, no site-packages) before .venv exists."""
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "reproducer" / "provenance.py"),
                           "why", str(ROOT / "build" / "nowhere"), "smoke", "tutorial/tutorial"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "tutorial: to run: tutorial not made yet\n"


# --- through make, in fresh clones ------------------------------------------------------------

def clone(source, target):
    """git clone of source's HEAD, sharing this checkout's .venv (a symlink; make is told the
    venv is up to date with -o)."""
    subprocess.run(["git", "clone", "-q", str(source), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "config", "user.email", "t@example.org"], check=True)
    subprocess.run(["git", "-C", str(target), "config", "user.name", "test"], check=True)
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


def make(repo, *args, timeout=600):
    environment = dict(os.environ, PYTHONPATH=str(repo))   # the clone's reproducer in the kernel
    return subprocess.run(["make", "-o", ".venv/.installed", *args], cwd=repo, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def planned(repo, *targets):
    """The notebooks `make -n TARGETS SCALE=smoke` would run."""
    done = make(repo, "-n", *targets, "SCALE=smoke")
    assert done.returncode == 0, done.stderr
    return re.findall(r"reproducer\.run_notebook\s+(?:--position \S+\s+)?(\S+)", done.stdout)


def commit_all(repo, message):
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", message], check=True)


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_figures_an_earlier_run_rewrote_do_not_make_the_next_run_dirty(tmp_path):
    """make figures runs notebooks one after another: the figures and README blocks the
    earlier ones rewrote are outputs, while a changed module or notebook is a dirty tree."""
    repo = clone(ROOT, tmp_path / "repo")
    assert provenance.git_state(repo) == {"commit": provenance._git("rev-parse", "HEAD", root=repo),
                                          "dirty": False}
    (repo / "figures" / "fig1_toy_meta_learning.json").write_text("{}")
    with open(repo / "README.md", "a") as readme:
        readme.write("a regenerated table\n")
    assert provenance.git_state(repo)["dirty"] is False
    with open(repo / "reproducer" / "models.py", "a") as module:
        module.write("# an edit\n")
    assert provenance.git_state(repo)["dirty"] is True


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_a_fresh_clone_plans_only_what_changed(tmp_path):
    """Smoke-run fig1 in a clone and commit its figure; a fresh clone of that plans nothing,
    whatever the timestamps; changing the notebook's code or a module it imported plans it;
    changing claims.py or the notebook's prose plans nothing."""
    first = clone(ROOT, tmp_path / "first")
    done = make(first, "fig1", "SCALE=smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fig1_toy_meta_learning.ipynb at smoke scale (13 cells)" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr and "[1/" not in done.stdout
    subprocess.run(["git", "-C", str(first), "add", "-f", "build/figures-smoke"], check=True)
    commit_all(first, "smoke figure")
    fresh = clone(first, tmp_path / "fresh")
    assert planned(fresh, "fig1") == []
    assert planned(fresh, "fig4", "fig1", "FORCE=1") == [
        "notebooks/fig4_initial_hypergradient.ipynb", "notebooks/fig1_toy_meta_learning.ipynb"]
    for path in fresh.rglob("*"):                               # checkout times mean nothing
        if ".git" not in path.parts and not path.is_symlink():
            os.utime(path, (time.time() + 60, time.time() + 60))
    assert planned(fresh, "fig1") == []
    with open(fresh / "reproducer" / "claims.py", "a") as f:     # not imported by fig1
        f.write("\n# an edit of the ledger\n")
    assert planned(fresh, "fig1") == []
    with open(fresh / "reproducer" / "meta.py", "a") as f:       # imported by fig1
        f.write("\n# an edit\n")
    assert planned(fresh, "fig1") == ["notebooks/fig1_toy_meta_learning.ipynb"]
    subprocess.run(["git", "-C", str(fresh), "checkout", "reproducer/meta.py"], check=True)
    nb = fresh / "notebooks" / "fig1_toy_meta_learning.ipynb"
    cells = json.loads(nb.read_text())
    markdown = next(c for c in cells["cells"] if c["cell_type"] == "markdown")
    markdown["source"].append("\nMore prose.")
    nb.write_text(json.dumps(cells, indent=1))
    assert planned(fresh, "fig1") == []
    code = [c for c in cells["cells"] if c["cell_type"] == "code"][-1]
    code["source"].append("\n# edited")
    nb.write_text(json.dumps(cells, indent=1))
    assert planned(fresh, "fig1") == ["notebooks/fig1_toy_meta_learning.ipynb"]


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_ctrl_c_of_make_deletes_no_committed_figure(tmp_path):
    """SIGINT to make's process group (what Ctrl-C sends) while fig10's notebook runs, at
    paper scale into the committed figures of a clone: its grouped targets (fig10_chaos and
    fig10_chaos_symlog) must all stay, and no staging folder may be left."""
    repo = clone(ROOT, tmp_path / "repo")
    environment = dict(os.environ, PYTHONPATH=str(repo))
    process = subprocess.Popen(["make", "-o", ".venv/.installed", "fig10", "FORCE=1"], cwd=repo,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list((repo / "figures").glob(".fig10_chaos-running-*")) and time.time() < deadline:
        time.sleep(0.2)
    assert time.time() < deadline, "the notebook did not start"
    time.sleep(4)                                   # the kernel is up and running cells
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                             "--untracked-files=no"], capture_output=True, text=True).stdout
    assert status == "", output
    assert not list((repo / "figures").glob(".*")), output


def test_staging_folders_of_dead_runs_are_removed(tmp_path):
    from reproducer.run_notebook import run
    out = tmp_path / "figures"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".tiny-running-{dead.pid}-abcd").mkdir()                # its process is gone
    (out / f".other-running-{os.getpid()}-efgh").mkdir()            # still running (us)
    notebook = tiny_notebook(tmp_path / "tiny.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
                             SAVES)
    run(notebook, tmp_path / "executed.ipynb", "smoke", out, "tiny")
    assert sorted(p.name for p in out.iterdir()) == [
        f".other-running-{os.getpid()}-efgh", "tiny.json", "tiny.pdf", "tiny.png"]


# --- writes that fail (issue 18, item 5) ------------------------------------------------------

def unwritable_folder():
    """A folder even root cannot write into (tests run as root, so chmod would not do)."""
    for folder in ("/sys/kernel", "/proc/sys"):
        try:
            Path(folder, ".reproducer-probe").mkdir()
        except OSError:
            return Path(folder)
        Path(folder, ".reproducer-probe").rmdir()
    pytest.skip("no read-only folder found on this machine")


def test_a_read_only_figures_folder_is_one_line(tmp_path):
    notebook = tiny_notebook(tmp_path / "ok.ipynb", "scale = 'paper'\noutput_dir = 'figures'", SAVES)
    folder = unwritable_folder()
    message = run_failing(notebook, tmp_path / "executed.ipynb", "smoke", folder, "tiny")
    assert "ok.ipynb" in message and "could not write" in message and str(folder) in message
    assert not (tmp_path / "executed.ipynb").exists()


def test_a_read_only_folder_for_the_executed_copy_is_one_line(tmp_path):
    notebook = tiny_notebook(tmp_path / "ok.ipynb", "scale = 'paper'\noutput_dir = 'figures'", SAVES)
    folder = unwritable_folder()
    message = run_failing(notebook, folder / "executed.ipynb", "smoke", tmp_path / "out", "tiny")
    assert "ok.ipynb" in message and "could not write" in message and str(folder) in message
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("failing_write", [1, 3], ids=["first", "last"])
def test_a_full_disk_keeps_the_old_executed_copy_and_writes_no_figure(tmp_path, monkeypatch,
                                                                       failing_write):
    """papermill writes the executed copy at the start, at each cell and at the end; a full
    disk at any of these writes is one line, the previous executed copy stays valid and no
    figure is published."""
    import nbformat
    import papermill.engines
    import papermill.execute
    notebook = tiny_notebook(tmp_path / "ok.ipynb", "scale = 'paper'\noutput_dir = 'figures'", SAVES)
    executed = tmp_path / "executed.ipynb"
    shutil.copy(notebook, executed)                          # a previous, valid executed copy
    writes = []

    def write_ipynb(nb, path):
        writes.append(path)
        if len(writes) >= failing_write:
            Path(path).write_text('{"cells": [')             # half written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        Path(path).write_text(nbformat.writes(nb))

    monkeypatch.setattr(papermill.execute, "write_ipynb", write_ipynb)
    monkeypatch.setattr(papermill.engines, "write_ipynb", write_ipynb)
    message = run_failing(notebook, executed, "smoke", tmp_path / "out", "tiny")
    assert "No space left on device" in message and "ok.ipynb" in message
    assert "no outputs were written" in message
    nbformat.read(executed, as_version=4)                    # still a valid notebook
    assert executed.read_text() == notebook.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["executed.ipynb", "ok.ipynb", "out"]
    assert list((tmp_path / "out").iterdir()) == []


# --- the ledger: is each claim's figure current, and a summary instead of the table -------

def test_the_ledger_says_whether_a_claims_figure_is_current(tmp_path):
    from reproducer import claims
    nb = ROOT / "notebooks" / "fig7_learned_training_set.ipynb"
    made = {"scale": "smoke", "notebook": "notebooks/fig7_learned_training_set.ipynb",
            "notebook_code_sha256": notebook_hash(nb),
            "sources": {"reproducer/meta.py": sha(ROOT / "reproducer" / "meta.py")}, "data": {}}
    data = {"colour_range": [-0.29, 0.33], "scale": "smoke", "provenance": made}
    for name in ("fig7_learned_training_set.json", "fig7_learned_training_set.png"):
        (tmp_path / name).write_text(json.dumps(data))
    row = next(r for r in claims.ledger(tmp_path) if r["figure"] == "fig7_learned_training_set.json")
    assert row["current"] == "yes"
    made["sources"]["reproducer/meta.py"] = "0" * 64
    (tmp_path / "fig7_learned_training_set.json").write_text(json.dumps(data))
    assert claims.figure_current(tmp_path / "fig7_learned_training_set.json") == \
        "no: reproducer/meta.py changed"
    del data["provenance"]
    (tmp_path / "fig7_learned_training_set.json").write_text(json.dumps(data))
    rows = claims.ledger(tmp_path)
    assert next(r for r in rows if r["figure"] == "fig7_learned_training_set.json")["current"] \
        == "no provenance"
    assert "| Figure current with the code |" in claims.markdown_table(rows)


def test_a_quick_ledger_prints_a_summary_and_the_verdicts_that_changed(tmp_path, capsys):
    from reproducer import claims
    claims.main(["--figures", str(tmp_path), "--no-readme"])
    first = capsys.readouterr().out
    assert "| Claim |" not in first and f"{len(claims.CLAIMS)} claims: " in first
    assert "no verdict changed." in first and len(first.splitlines()) == 3
    (tmp_path / "fig7_learned_training_set.json").write_text(json.dumps(
        {"colour_range": [-0.29, 0.33], "scale": "paper"}))
    claims.main(["--figures", str(tmp_path), "--no-readme"])
    second = capsys.readouterr().out
    assert "verdicts changed:\n  learned_images_range: not yet run -> supports" in second


def test_a_long_cell_shows_progress(tmp_path, monkeypatch, capsys):
    from reproducer import run_notebook
    monkeypatch.setattr(run_notebook, "HEARTBEAT_SECONDS", 1)
    notebook = tiny_notebook(tmp_path / "slow.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
                             "import time; time.sleep(4)", SAVES)
    run_notebook.run(notebook, tmp_path / "executed.ipynb", "quick", tmp_path / "out", "tiny")
    out = capsys.readouterr().out
    assert "slow: cell 3 of 4 running" in out            # 4 = 3 cells + papermill's injected one
    assert "slow.ipynb at quick scale (4 cells)" in out


def test_data_read_by_worker_processes_is_recorded(tmp_path, monkeypatch):
    """Fig. 4's hypergradients run in joblib's worker processes, which read the data there."""
    from reproducer.run_notebook import run
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    (data / "mnist" / "worker.gz").write_bytes(b"read by a worker")
    monkeypatch.setenv("REPRODUCER_DATA", str(data))
    notebook = tiny_notebook(
        tmp_path / "workers.ipynb", "scale = 'paper'\noutput_dir = 'figures'",
        "import os, subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'import reproducer, os; open(os.path.join("
        "os.environ[\"REPRODUCER_DATA\"], \"mnist\", \"worker.gz\"), \"rb\").read()'], check=True)",
        SAVES)
    run(notebook, tmp_path / "executed.ipynb", "smoke", tmp_path / "out", "tiny")
    made = json.loads((tmp_path / "out" / "tiny.json").read_text())["provenance"]
    assert made["data"] == {"mnist/worker.gz": {"sha256": sha(data / "mnist" / "worker.gz"),
                                                "bytes": 16, "from": "REPRODUCER_DATA"}}


def test_the_figure_tables_total_counts_each_notebook_once(tmp_path):
    """One notebook writing four figures ran once: its runtime counts once in the total, and
    a figure without a record is named, not silently left out of the sum."""
    made = lambda nb, s: {"provenance": {"notebook": f"notebooks/{nb}.ipynb", "wall_seconds": s,
                                          "scale": "paper", "load_average": {}, "git": {}}}
    for name, data in (("fig2_a", made("learning_schedules", 1800)),
                       ("fig3_b", made("learning_schedules", 1800)),
                       ("fig1_c", made("fig1_toy", 1800)), ("fig9_d", {"no": "record"})):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    table = provenance.figure_table(provenance.figure_rows(tmp_path))
    assert table.splitlines()[-1] == ("All 2 notebooks, one run each: 1.0 h in total (the sum "
                                      "of their last runs above, each measured at the load it "
                                      "gives); not recorded: fig9_d.")
