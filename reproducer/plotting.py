"""One figure style for every notebook, and saving a figure with the numbers behind it."""
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import seaborn as sns

from . import provenance


def use_style():
    """The house style: seaborn 'ticks' on a white background, colour-blind palette."""
    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.1,
                  rc={"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight",
                      "axes.spines.top": False, "axes.spines.right": False,
                      "legend.frameon": False, "lines.linewidth": 1.4,
                      "lines.markersize": 3.5})


def layer_colors(n):
    """n distinct colours from the house palette, one per layer."""
    return sns.color_palette("colorblind", n)


def to_json(x):
    """numpy arrays and scalars -> lists and floats, recursively; NaN and inf -> None
    (strict JSON has no NaN, and None reads back as missing)."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_json(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    return x


def _write_temporary(path, write):
    """write(file) into a new temporary file beside path, readable like any figure; returns
    its name. A reader of path never sees half a file."""
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".part",
                                     delete=False) as f:
        tmp = f.name
    try:
        with open(tmp, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)      # temporary files are private; figures are not
    except BaseException:
        os.remove(tmp)
        raise
    return tmp


def save_figure(fig, output_dir, name, data):
    """Write output_dir/name.png, name.pdf and name.json (the numbers behind the figure), all
    three or none: each is written to a temporary file first, and only when all three are
    written are they renamed into place.

    data: a dict of arrays, numbers, strings and nested dicts/lists of them.
    Returns the three paths.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: output_dir / f"{name}.{ext}" for ext in ("png", "pdf", "json")}
    text = json.dumps(to_json(data), indent=1, allow_nan=False).encode()
    writers = {"png": lambda f: fig.savefig(f, format="png"),
               "pdf": lambda f: fig.savefig(f, format="pdf"),
               "json": lambda f: f.write(text)}
    temporary = {}
    try:
        for ext, write in writers.items():
            temporary[ext] = _write_temporary(paths[ext], write)
        for ext, tmp in temporary.items():
            os.replace(tmp, paths[ext])
    finally:
        for tmp in temporary.values():
            if os.path.exists(tmp):
                os.remove(tmp)
    provenance.write_record()      # under the runner: the modules and data this figure used
    return paths
