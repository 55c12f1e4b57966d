"""Run one figure notebook with papermill, as `make figures` does.

    python -m reproducer.run_notebook NOTEBOOK EXECUTED_COPY SCALE FIGDIR [FIGURE ...]

Injects the parameters `scale` and `output_dir`, and fails with the notebook and cell
named (the executed copy keeps the traceback), or if the notebook did not write
FIGDIR/FIGURE.png for each FIGURE (default: the notebook's own name).
"""
import sys
from pathlib import Path

SCALES = ("paper", "quick", "smoke")


def run(notebook, executed, scale, output_dir, *figures):
    import papermill
    if scale not in SCALES:
        raise SystemExit(f"scale must be one of {', '.join(SCALES)}, got {scale!r}.")
    name = Path(notebook).stem
    Path(executed).parent.mkdir(parents=True, exist_ok=True)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(notebook, executed, kernel_name="python3",
                                   parameters={"scale": scale, "output_dir": str(output_dir)},
                                   progress_bar=False)
    except papermill.PapermillExecutionError as error:
        raise SystemExit(f"{notebook} failed in cell {error.exec_count} with {error.ename}: "
                         f"{error.evalue}\nThe executed notebook with the full traceback is "
                         f"{executed}.") from None
    missing = [str(Path(output_dir) / f"{figure}.png") for figure in figures or [name]
               if not (Path(output_dir) / f"{figure}.png").exists()]
    if missing:
        raise SystemExit(f"{notebook} ran but did not write {', '.join(missing)}; it must "
                         "save its figures there (see reproducer.plotting.save_figure).")


if __name__ == "__main__":
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    run(*sys.argv[1:])
