"""Hypergradients by exactly reversing SGD with momentum (Maclaurin et al., ICML 2015)."""
from .exact import ExactArithmeticError, FixedPointRangeError, ReversalError
from .sgd import sgd_momentum

__all__ = ["sgd_momentum", "ExactArithmeticError", "FixedPointRangeError", "ReversalError"]
