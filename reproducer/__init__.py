"""Hypergradients by exactly reversing SGD with momentum (Maclaurin et al., ICML 2015),
and the same for Adam and RMSprop."""
from .adaptive import adam, rmsprop
from .exact import ExactArithmeticError, FixedPointRangeError, PrecisionWarning, ReversalError
from .sgd import sgd_momentum

__all__ = ["sgd_momentum", "adam", "rmsprop", "ExactArithmeticError", "FixedPointRangeError",
           "PrecisionWarning", "ReversalError"]
