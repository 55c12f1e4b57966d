"""Run one figure notebook with papermill, as `make figures` does.

    python -m reproducer.run_notebook NOTEBOOK EXECUTED_COPY SCALE FIGDIR [FIGURE ...]

Injects the parameters `scale` and `output_dir`, and fails with one line naming the notebook
(and the cell) if it cannot run, or if it did not write FIGDIR/FIGURE.png for each FIGURE
(default: the notebook's own name). The notebook writes into a temporary folder inside
FIGDIR; its files move into FIGDIR only when the whole notebook succeeded, so a failed run
leaves no new outputs behind. The executed copy keeps the traceback; it is written beside
its place and renamed, so it is never half written. Each figure JSON gets a "provenance"
entry (what made it: reproducer.provenance). Staging folders left by killed runs are removed.
A file that cannot be written (read-only folder, full disk) is one line naming it.

`resolve_parameters` is what a notebook calls right after its parameters cell, so that run
by hand (in Jupyter, working folder notebooks/) it writes under the repository's build/.
"""
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

SCALES = ("paper", "quick", "smoke")
HEARTBEAT_SECONDS = 60      # at quick and paper scale, a line this often while a cell runs
ROOT = Path(__file__).resolve().parents[1]


def repository_root():
    """The checkout this package was installed from (editable install), else the working folder."""
    return ROOT if (ROOT / "pyproject.toml").exists() else Path.cwd()


def resolve_parameters(scale, output_dir):
    """(scale, output_dir) for a notebook's run: the environment variable REPRODUCER_SCALE,
    when set, replaces `scale` (the runner sets it to the scale it injects, so a hand run
    can be made small without editing the notebook); a relative output_dir is taken from the
    repository root, whatever the working folder. Says so when REPRODUCER_SCALE overrides
    the parameters cell's scale. Returns (str, str)."""
    from .parameters import ParameterError
    choices = " or ".join(f'"{s}"' for s in SCALES)
    override = os.environ.get("REPRODUCER_SCALE")
    if override:
        if override not in SCALES:
            raise ParameterError(f"the environment variable REPRODUCER_SCALE={override!r} "
                                 f"overrides the parameters cell's scale but is not a scale: "
                                 f"set it to {choices.replace(' or ', ', ')}, or unset it.")
        if override != scale:
            print(f"REPRODUCER_SCALE={override} overrides scale = {scale!r} of the parameters "
                  f"cell: running at {override} scale (unset it to run at the cell's scale).")
        scale = override
    if scale not in SCALES:
        raise ParameterError(f"scale = {scale!r} in the parameters cell: it must be {choices}.")
    if not isinstance(output_dir, (str, os.PathLike)) or str(output_dir) == "":
        raise ParameterError(f"output_dir = {output_dir!r} in the parameters cell: it must be "
                             "a folder's path (a string).")
    output_dir = Path(output_dir)
    if not output_dir.is_absolute():
        output_dir = repository_root() / output_dir
    if os.environ.get("REPRODUCER_TEXT_PROGRESS"):
        _text_progress_bars()
    return scale, str(output_dir)


def _text_progress_bars():
    """Under the runner, the library's tqdm.auto bars print text (which the runner streams
    to the terminal) instead of Jupyter widgets (which only a browser shows)."""
    import tqdm.auto
    import tqdm.std
    tqdm.auto.tqdm = tqdm.std.tqdm


def _fail(notebook, message):
    raise SystemExit(f"{notebook}: {message}")


def _read_notebook(notebook):
    """The notebook, after checking it exists, is a notebook and has a `parameters` cell."""
    import nbformat
    path = Path(notebook)
    if not path.exists():
        _fail(notebook, "no such notebook.")
    if not path.is_file():
        _fail(notebook, "is a folder, not a notebook.")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as error:     # nbformat raises several kinds for a file that is not JSON
        _fail(notebook, f"is not a Jupyter notebook ({type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else 'unreadable'}).")
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        _fail(notebook, "has no cell tagged `parameters`, so the scale and output folder "
                        "cannot be injected; refusing to run it. Restore the tag on the cell "
                        "of literals near the top (JupyterLab: property inspector > Cell Tags; "
                        "or add \"tags\": [\"parameters\"] to that cell's metadata).")
    return nb


def _check_folder(notebook, path, what):
    path = Path(path)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            _fail(notebook, f"the {what} {path} cannot be created: {parent} is a file.")


def _running_cell(executed):
    """Index (from 1) of the last cell that started, from the executed copy papermill saves
    at every cell start, or None."""
    import nbformat
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:
        return None
    started = [i for i, cell in enumerate(nb.cells, start=1)
               if cell.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def _parameters(nb, scale, output_dir):
    """The parameters cell's literals, with what the runner injects."""
    import ast
    values = {}
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                for statement in ast.parse(cell.source).body:
                    if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
                        values[statement.targets[0].id] = ast.literal_eval(statement.value)
            except (SyntaxError, ValueError):
                pass
    values.update(scale=scale, output_dir=str(output_dir))
    return values


def _clean_stale_staging(output_dir):
    """Remove staging folders left by runs that were killed (SIGKILL, power cut): those
    named .NAME-running-PID-* whose process PID is gone."""
    for path in Path(output_dir).glob(".*-running-*"):
        pid = path.name.rsplit("-running-", 1)[1].split("-")[0]
        if not path.is_dir() or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:             # exists, owned by someone else
            pass


def _heartbeat(label, name, executed_part, cells, stop):
    """While a cell runs for minutes, say so every `every` seconds (papermill's bar moves
    only when a cell ends)."""
    import threading

    def beat():
        start = time.perf_counter()
        while not stop.wait(HEARTBEAT_SECONDS):
            cell = _running_cell(executed_part)
            where = f"cell {cell} of {cells}" if cell else "starting"
            print(f"\n{label}{name}: {where} running, {time.perf_counter() - start:.0f} s so far",
                  flush=True)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    return thread


def _write_error(notebook, error, where):
    """One line for a file that could not be written (read-only folder, full disk)."""
    _fail(notebook, f"could not write {error.filename or where}: "
                    f"{error.strerror or error}; no outputs were written.")


def run(notebook, executed, scale, output_dir, *figures, position=""):
    """Execute `notebook` at `scale` into output_dir, keeping the executed copy at `executed`.

    position: e.g. "3/12", shown in the progress line. Output is streamed (cell progress,
    the notebook's own printouts and bars) except at smoke scale, which prints one line.
    Every figure JSON gets a "provenance" entry (reproducer.provenance). The executed copy
    is written beside `executed` and renamed into place, so it is never half written.
    """
    import json
    import threading

    import papermill
    from nbclient.exceptions import DeadKernelError

    from . import provenance
    if scale not in SCALES:
        raise SystemExit(f"scale must be one of {', '.join(SCALES)}, got {scale!r}.")
    nb = _read_notebook(notebook)
    name = Path(notebook).stem
    executed = Path(executed)
    _check_folder(notebook, output_dir, "output folder")
    _check_folder(notebook, executed.parent, "folder of the executed copy")
    if executed.is_dir():
        _fail(notebook, f"the executed copy's path {executed} is a folder.")
    try:
        executed.parent.mkdir(parents=True, exist_ok=True)
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        _clean_stale_staging(output_dir)
        staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=f".{name}-running-{os.getpid()}-"))
    except OSError as error:
        _write_error(notebook, error, f"into the output folder {output_dir}")
    part = executed.with_name(f".{executed.stem}.part.ipynb")   # the executed copy until done
    descriptor, record = tempfile.mkstemp(prefix=f"{name}-record-", suffix=".json")
    os.close(descriptor)                  # the kernel writes what it used here (save_figure)
    record = Path(record)
    verbose = scale != "smoke"
    label = f"[{position}] " if position else ""
    cells = len(nb.cells) + 1                                   # papermill injects one
    print(f"{label}{notebook} at {scale} scale ({cells} cells) -> {output_dir}", flush=True)
    start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()
    at_start = provenance.snapshot(notebook)   # the code as it is now, not when the run ends
    environment = {"REPRODUCER_SCALE": scale, "REPRODUCER_TEXT_PROGRESS": "1",
                   "TQDM_MININTERVAL": "2", provenance.RECORD_VARIABLE: str(record)}
    saved = {k: os.environ.get(k) for k in environment}
    os.environ.update(environment)
    stop = threading.Event()
    if verbose:
        _heartbeat(label, name, part, cells, stop)
    try:
        papermill.execute_notebook(
            notebook, part, kernel_name="python3",
            parameters={"scale": scale, "output_dir": str(staging)},
            progress_bar=dict(desc=f"{label}{name} cells", unit="cell", mininterval=2)
            if verbose else False,
            stdout_file=sys.stdout if verbose else None,
            stderr_file=sys.stderr if verbose else None,
            # The kernel's own log ("running over TCP without encryption" to a kernel on
            # this machine, "KeyboardInterrupt caught" at shutdown) is not the notebook's
            # output; its failures still surface as errors of the cell or a dead kernel.
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
        missing = [f"{figure}.png" for figure in figures or [name]
                   if not (staging / f"{figure}.png").exists()]
        if missing:
            _fail(notebook, f"ran but did not write {', '.join(missing)} into output_dir; it "
                            "must save its figures there (see reproducer.plotting.save_figure).")
        used = json.loads(record.read_text() or "{}")
        if not used:
            _fail(notebook, "saved its figures without reproducer.plotting.save_figure, so what "
                            "made them is unknown; save them with save_figure.")
        made = provenance.entry(notebook, scale, _parameters(nb, scale, output_dir), used,
                                time.perf_counter() - start, load_start, started, at_start)
        for path in staging.glob("*.json"):
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data["provenance"] = made
                path.write_text(json.dumps(data, indent=1, allow_nan=False))
        os.replace(part, executed)
        for path in staging.iterdir():              # all went well: move everything into place
            os.replace(path, Path(output_dir) / path.name)
    except papermill.PapermillExecutionError as error:
        _keep(part, executed)
        _fail(notebook, f"failed in cell {error.cell_index + 1} of {executed} (execution "
                        f"count {error.exec_count}) with {error.ename}: {error.evalue}; no "
                        "outputs were written; that copy keeps the traceback.")
    except DeadKernelError:
        cell = _running_cell(part)
        _keep(part, executed)
        where = f" in cell {cell} of {executed}" if cell else f"; see {executed}"
        _fail(notebook, f"the kernel died{where} (out of memory, or a crash in native code); "
                        "no outputs were written.")
    except OSError as error:                        # the executed copy or a figure file
        _write_error(notebook, error, f"the executed copy {executed} or the figures")
    finally:
        stop.set()
        shutil.rmtree(staging, ignore_errors=True)
        for path in (part, record, Path(f"{record}.reads")):
            if path.exists():
                path.unlink()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    print(f"{label}{name} done in {time.perf_counter() - start:.0f} s", flush=True)


def _keep(part, executed):
    """After a failed cell: the executed copy (with the traceback) into place, if complete."""
    import nbformat
    try:
        nbformat.read(part, as_version=4)
        os.replace(part, executed)
    except Exception:       # a copy papermill could not finish writing is not kept
        pass


def main(argv):
    position = ""
    if argv[:1] == ["--position"]:
        position, argv = argv[1], argv[2:]
    if len(argv) < 4:
        raise SystemExit(__doc__)
    run(*argv, position=position)


if __name__ == "__main__":
    main(sys.argv[1:])
