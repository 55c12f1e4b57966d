"""Numbers from the authors' own results files (HIPS/hypergrad), to compare ours with.

Their `results.pkl` files are Python 2 pickles of numpy arrays and of their own classes
(`hypergrad.nn_utils.VectorParser`, ...). `load_results` reads one in Python 3, turning
each of their classes into a plain object that keeps its attributes. The few numbers we
compare with are stored as JSON in `authors_results/` (with the file and commit they
come from), so the notebooks need neither the pickle nor their repository.
"""
import json
import pickle
from pathlib import Path

import numpy as np

RESULTS_DIR = Path(__file__).parent / "authors_results"
THEIR_MODULES = ("hypergrad", "funkyyak")


class TheirObject:
    """Stands in for one of the authors' classes: keeps whatever state the pickle holds."""

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"state": state})


class _Unpickler(pickle.Unpickler):
    renamed = {"__builtin__": "builtins", "copy_reg": "copyreg"}

    def find_class(self, module, name):
        if module.split(".")[0] in THEIR_MODULES:
            return TheirObject
        return super().find_class(self.renamed.get(module, module), name)


def load_results(path):
    """The object pickled in one of the authors' results.pkl files (Python 2, latin-1)."""
    with open(path, "rb") as f:
        return _Unpickler(f, encoding="latin1").load()


def parsed(vector_parser):
    """One of their VectorParser objects -> dict name -> array of its shape."""
    return {name: np.reshape(vector_parser.vect[where], shape)
            for name, (where, shape) in vector_parser.idxs_and_shapes.items()}


def stored(name):
    """A stored comparison: dict from authors_results/<name>.json (arrays as lists)."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no stored authors' result {name!r} (looked for {path}).")
    return json.loads(path.read_text())
