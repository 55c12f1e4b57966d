"""Hypergradients by exactly reversing SGD with momentum (Maclaurin et al., ICML 2015),
and the same for Adam and RMSprop."""
import os as _os

if _os.environ.get("REPRODUCER_RUN_RECORD"):    # a kernel of reproducer.run_notebook
    from .provenance import start_recording as _start_recording
    _start_recording()                          # before any data file is read

from .adaptive import adam, rmsprop  # noqa: E402
from .exact import ExactArithmeticError, FixedPointRangeError, PrecisionWarning, ReversalError  # noqa: E402
from .sgd import sgd_momentum  # noqa: E402

__all__ = ["sgd_momentum", "adam", "rmsprop", "ExactArithmeticError", "FixedPointRangeError",
           "PrecisionWarning", "ReversalError"]
