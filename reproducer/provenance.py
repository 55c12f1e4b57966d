"""What made a figure, and whether a figure is still current with the code and data.

Every figure JSON a notebook run writes (through `reproducer.run_notebook`) carries a
"provenance" entry: the commit and whether the tree was dirty, a hash of the notebook's code
cells, a hash of each package source and package data file the kernel used, the scale and
parameters, the checksums of the data files it read, versions of the key packages, wall
time, cores, load average and date. A figure is *current* when its notebook's code cells,
every package file it recorded and every data file it read (where one is found) still hash
to what it recorded, and it was made at the scale asked for. Timestamps play no part, so a
fresh clone knows its committed figures are current.

What counts as a package source: the `reproducer.*` modules the kernel had imported when the
notebook last saved a figure (a module imported later cannot have changed a saved number),
and the non-Python files under reproducer/ it read (e.g. authors_results/*.json). Two modules
are left out because they only run and record the run, and what they decide (the scale, the
output folder) is recorded itself: run_notebook and provenance. So an edit of claims.py, say,
leaves every figure current unless a notebook imports it.

This module uses the standard library only: `make` runs it as a script with the system
python while it reads the Makefile, before the virtual environment exists:

    python3 reproducer/provenance.py stale FIGDIR SCALE NOTEBOOK/FIGURE ...
        prints the notebooks (of those named) whose figures are missing or not current
    python3 reproducer/provenance.py why FIGDIR SCALE NOTEBOOK/FIGURE ...
        says for each notebook whether it is current, and if not why
    python3 reproducer/provenance.py readme [--figures figures] [--readme README.md]
        rewrites the README's figure table (between <!-- figures:start --> and
        <!-- figures:end -->) from the figures' JSON
"""
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
RECORD_VARIABLE = "REPRODUCER_RUN_RECORD"     # set by the runner: where the kernel records
NOT_SOURCES = ("reproducer.run_notebook", "reproducer.provenance")
PACKAGES = ("numpy", "scipy", "autograd", "matplotlib", "seaborn", "joblib", "scikit-learn",
            "bayesian-optimization", "papermill", "ipykernel")
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def notebook_hash(path):
    """sha256 of the notebook's code cells (their source and tags, in order). Markdown,
    outputs and metadata do not change a number, so editing prose leaves figures current."""
    cells = json.loads(Path(path).read_text())["cells"]
    code = [[c.get("source", ""), sorted(c.get("metadata", {}).get("tags", []))]
            for c in cells if c.get("cell_type") == "code"]
    code = [["".join(s) if isinstance(s, list) else s, t] for s, t in code]
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()


def data_roots():
    """(label, folder) where the data loaders look, in their order: REPRODUCER_DATA, then
    the cache (REPRODUCER_CACHE, else XDG_CACHE_HOME/reproducer, else ~/.cache/reproducer)."""
    roots = []
    if os.environ.get("REPRODUCER_DATA"):
        roots.append(("REPRODUCER_DATA", Path(os.environ["REPRODUCER_DATA"])))
    if os.environ.get("REPRODUCER_CACHE"):
        cache = Path(os.environ["REPRODUCER_CACHE"])
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reproducer"
    roots.append(("cache", cache))
    return [(label, Path(os.path.abspath(folder))) for label, folder in roots]


# --- in the kernel: what the run used -----------------------------------------------------

_read = set()        # absolute paths of data and package-data files opened for reading
_hashes = {}         # path -> sha256, so a file read many times is hashed once per run
_watched = ()        # folder prefixes whose reads count: the package and the data roots


def _audit(event, args):
    if event != "open" or not args or not isinstance(args[0], (str, os.PathLike)):
        return
    mode = args[1] if len(args) > 1 else "r"
    if isinstance(mode, str) and any(m in mode for m in "wax+"):
        return
    if mode is None and len(args) > 2 and isinstance(args[2], int) and args[2] & (
            os.O_WRONLY | os.O_RDWR | os.O_CREAT):
        return
    path = os.path.abspath(os.fspath(args[0]))
    if path in _read or not path.startswith(_watched):
        return
    _read.add(path)
    log = os.environ.get(RECORD_VARIABLE)
    if log:          # worker processes (joblib, dask) read data too: one log for the whole run
        with open(f"{log}.reads", "a") as f:
            f.write(path + "\n")


def start_recording():
    """Record, from now on, the package-data and data files this process (and, through a
    shared log, every worker process it starts) opens for reading (PEP 578 audit hook; it
    cannot be removed, so only the runner's kernels, and their workers, call this)."""
    global _watched
    if not getattr(start_recording, "started", False):
        _watched = tuple(str(folder) + os.sep for folder in
                         [PACKAGE, *(root for _, root in data_roots())])
        sys.addaudithook(_audit)
        start_recording.started = True


def _hash(path):
    if path not in _hashes:
        _hashes[path] = sha256(path)
    return _hashes[path]


def used():
    """{"sources": {reproducer/x.py: sha256}, "data": {mnist/f.gz: {sha256, bytes, from}}}:
    the package modules imported so far (less NOT_SOURCES), the package data files and the
    data files read so far."""
    sources, data = {}, {}
    for name, module in list(sys.modules.items()):
        if (name == "reproducer" or name.startswith("reproducer.")) and name not in NOT_SOURCES:
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().is_relative_to(PACKAGE):
                sources[Path(file).resolve().relative_to(ROOT).as_posix()] = _hash(file)
    roots = data_roots()
    read = set(_read)
    log = Path(f"{os.environ.get(RECORD_VARIABLE, '')}.reads")
    if os.environ.get(RECORD_VARIABLE) and log.exists():
        read.update(line for line in log.read_text().splitlines() if line)
    for path in sorted(read):
        p = Path(path)
        if not p.is_file():
            continue
        if p.is_relative_to(PACKAGE):
            if p.suffix not in (".py", ".pyc"):
                sources[p.relative_to(ROOT).as_posix()] = _hash(path)
            continue
        for label, root in roots:
            if p.is_relative_to(root):
                data[p.relative_to(root).as_posix()] = {
                    "sha256": _hash(path), "bytes": p.stat().st_size, "from": label}
                break
    return {"sources": dict(sorted(sources.items())), "data": data}


def write_record():
    """Under the runner, write what the run used so far to the file it named (called by
    save_figure each time a figure is saved). Does nothing otherwise."""
    target = os.environ.get(RECORD_VARIABLE)
    if target:
        Path(target).write_text(json.dumps(used()))


# --- in the runner: the whole entry ------------------------------------------------------

def _git(*args, root=None):
    import subprocess
    try:
        done = subprocess.run(["git", "-C", str(root or ROOT), *args], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# What `make figures` itself rewrites: a change there is an earlier figure run's output, not
# a change of the code, so it does not make the next notebook's run "dirty".
OUTPUTS = ("figures", "README.md")


def git_state(root=None):
    """{"commit": sha or None, "dirty": bool or None}; dirty means tracked files other than
    OUTPUTS differ from the commit (the recorded hashes say what actually ran)."""
    commit = _git("rev-parse", "HEAD", root=root)
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *[f":(exclude){p}" for p in OUTPUTS], root=root) if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions():
    from importlib import metadata
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def snapshot(notebook):
    """What the runner sees as a run starts: the notebook's code hash, the git state and the
    sha256 of every file of the package. The entry records these, not the files as they are
    when the run ends: a module or notebook edited (or a commit made) while a long run goes
    on must not be recorded as what made its figures."""
    package = {}
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            package[path.relative_to(ROOT).as_posix()] = sha256(path)
    return {"notebook_code_sha256": notebook_hash(notebook), "git": git_state(), "package": package}


def entry(notebook, scale, parameters, record, wall_seconds, load_start, started, at_start=None):
    """The provenance entry of one run: record is what the kernel wrote (used()); at_start
    is snapshot(notebook) taken when the run began (taken now if None). Each source the
    kernel used is recorded with its hash at the start, so a file changed during the run
    leaves its figures stale rather than current."""
    notebook = Path(notebook).resolve()
    name = notebook.relative_to(ROOT).as_posix() if notebook.is_relative_to(ROOT) else str(notebook)
    at_start = at_start or snapshot(notebook)
    sources = {path: at_start["package"].get(path, digest)
               for path, digest in record.get("sources", {}).items()}
    return {"notebook": name, "notebook_code_sha256": at_start["notebook_code_sha256"],
            "sources": sources, "data": record.get("data", {}),
            "scale": scale, "parameters": parameters, "git": at_start["git"],
            "packages": package_versions(), "wall_seconds": round(wall_seconds, 1),
            "cores": os.cpu_count(),
            "load_average": {"start": [round(x, 2) for x in load_start],
                             "end": [round(x, 2) for x in os.getloadavg()]},
            "date": started}


# --- is a figure current? ------------------------------------------------------------------

def reasons_stale(figdir, scale, notebook, figures, root=ROOT):
    """Why the figures of notebooks/NOTEBOOK.ipynb in figdir are not current (an empty list
    if they are)."""
    root = Path(root)
    nb_path = root / "notebooks" / f"{notebook}.ipynb"
    if not nb_path.exists():
        return [f"no notebook {nb_path}"]
    code = notebook_hash(nb_path)
    roots = data_roots()
    reasons = []
    for figure in figures:
        json_path = Path(figdir) / f"{figure}.json"
        if not (Path(figdir) / f"{figure}.png").exists() or not json_path.exists():
            reasons.append(f"{figure} not made yet")
            continue
        try:
            made = json.loads(json_path.read_text()).get("provenance")
        except (OSError, ValueError, AttributeError):
            reasons.append(f"{json_path} is unreadable")
            continue
        if not isinstance(made, dict):
            reasons.append(f"{figure}.json records no provenance (made before it was recorded)")
            continue
        if made.get("scale") != scale:
            reasons.append(f"{figure} was made at {made.get('scale')} scale, not {scale}")
        if made.get("notebook_code_sha256") != code:
            reasons.append(f"the code of {nb_path.name} changed")
        for source, digest in made.get("sources", {}).items():
            path = root / source
            if not path.is_file():
                reasons.append(f"{source} is gone")
            elif sha256(path) != digest:
                reasons.append(f"{source} changed")
        for name, info in made.get("data", {}).items():
            for _, folder in roots:
                if (folder / name).is_file():
                    if sha256(folder / name) != info.get("sha256"):
                        reasons.append(f"data file {folder / name} changed")
                    break
    return list(dict.fromkeys(reasons))


def _grouped(pairs):
    """["nb/figure", ...] -> {nb: [figure, ...]} in order."""
    groups = {}
    for pair in pairs:
        notebook, _, figure = pair.partition("/")
        groups.setdefault(notebook, []).append(figure or notebook)
    return groups


# --- the README's figure table --------------------------------------------------------------

def _runtime(seconds):
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def figure_rows(figures_dir, figures=None, root=ROOT):
    """One dict per committed figure JSON in FIGURES (default: figures_dir's *.json, less
    claims.json): figure, notebook, target, runtime, made (date, cores, load), current."""
    figures_dir = Path(figures_dir)
    names = figures or sorted(p.stem for p in figures_dir.glob("*.json") if p.stem != "claims")
    rows = []
    for name in names:
        try:
            data = json.loads((figures_dir / f"{name}.json").read_text())
        except (OSError, ValueError):
            data = {}
        made = data.get("provenance") if isinstance(data, dict) else None
        row = {"figure": name, "notebook": "", "runtime": "", "made": "", "current": "",
               "seconds": None}
        if isinstance(made, dict):
            notebook = Path(made.get("notebook", "")).stem
            load = made.get("load_average", {})
            row.update(notebook=notebook, runtime=_runtime(made.get("wall_seconds", 0)),
                       seconds=made.get("wall_seconds"),
                       made=(f"{made.get('date', '')[:10]}, {made.get('cores')} cores, load "
                             f"{load.get('start', ['?'])[0]} -> {load.get('end', ['?'])[0]}, "
                             f"commit {(made.get('git', {}).get('commit') or '?')[:7]}"
                             + (" (dirty)" if made.get("git", {}).get("dirty") else "")))
            why = reasons_stale(figures_dir, made.get("scale"), notebook, [name], root)
            row["current"] = "yes" if not why else "no: " + "; ".join(why)
        else:
            row["current"] = "no provenance (made before it was recorded)"
        rows.append(row)
    return rows


def figure_table(rows):
    lines = ["| figure | notebook | last run took | made (date, cores, load average before -> after, commit) | current with the code |",
             "|---|---|---|---|---|"]
    for r in rows:
        cells = [f"`{r['figure']}`", f"`{r['notebook']}.ipynb`" if r["notebook"] else "-",
                 r["runtime"] or "not recorded", r["made"] or "-", r["current"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    per_notebook = {r["notebook"]: r["seconds"] for r in rows if r["notebook"]}
    unrecorded = sorted(r["figure"] for r in rows if r["seconds"] is None)
    total = sum(s for s in per_notebook.values() if s)
    lines.append("")
    lines.append(f"All {len(per_notebook)} notebooks, one run each: {total / 3600:.1f} h in total "
                 "(the sum of their last runs above, each measured at the load it gives)"
                 + (f"; not recorded: {', '.join(unrecorded)}" if unrecorded else "") + ".")
    return "\n".join(lines)


def replace_between(text, start_marker, end_marker, table):
    """text with everything between the start and end marker lines replaced by table; None if
    the markers are missing or out of order (the README blocks of this and of claims.py)."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        return None
    return f"{text[:start + len(start_marker)]}\n{table}\n{text[end:]}"


class WriteError(Exception):
    """Writing the ledger failed; the message names the file, and nothing was changed."""


def write_all(texts):
    """Write each {path: text} whole or not at all: every text goes to a temporary file beside
    its path first, and only when all are written are they renamed into place (as
    plotting.save_figure does), so a full disk never leaves half a claims.json or README."""
    temporary = {}
    try:
        for path, text in texts.items():
            path = Path(path)
            try:
                mode = path.stat().st_mode & 0o777 if path.exists() else None
                with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent,
                                                 prefix=f".{path.name}.", suffix=".part",
                                                 delete=False) as f:
                    temporary[path] = f.name
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                if mode is None:
                    mode = 0o666 & ~_umask()
                os.chmod(temporary[path], mode)
            except OSError as error:
                raise WriteError(f"could not write {path} ({error.strerror or error}); "
                                 "nothing was changed") from None
        for path, tmp in temporary.items():
            os.replace(tmp, path)
    finally:
        for tmp in temporary.values():
            if os.path.exists(tmp):
                os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def rewrite_readme(readme, table):
    """Put table between the figure markers of readme; False if the markers are missing."""
    text = Path(readme).read_text()
    new = replace_between(text, START, END, table)
    if new is None:
        return False
    if new != text:
        write_all({readme: new})
    return True


def main(argv):
    if argv[:1] in (["stale"], ["why"]) and len(argv) >= 3:
        figdir, scale, groups = argv[1], argv[2], _grouped(argv[3:])
        for notebook, figures in groups.items():
            why = reasons_stale(figdir, scale, notebook, figures)
            if argv[0] == "stale":
                if why:
                    print(notebook)
            else:
                print(f"{notebook}: " + ("current" if not why else "to run: " + "; ".join(why)))
        return 0
    if argv[:1] == ["readme"]:
        import argparse
        parser = argparse.ArgumentParser(prog="provenance.py readme")
        parser.add_argument("--figures", default="figures")
        parser.add_argument("--readme", default="README.md")
        args = parser.parse_args(argv[1:])
        table = figure_table(figure_rows(args.figures))
        try:
            written = rewrite_readme(args.readme, table)
        except WriteError as error:
            print(f"provenance.py readme: {error}", file=sys.stderr)
            return 1
        if not written:
            print(table)
            print(f"{args.readme} has no {START} ... {END} section: add the two marker lines "
                  "where the figure table belongs, then run this again.")
            return 1
        print(f"figure table written to {args.readme}.")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
