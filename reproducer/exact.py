"""Exact fixed-point arithmetic with an information buffer (the paper's Algorithm 3).

Weights and velocities are held as int64 counts of 2**-RADIX_BITS. Adding two such numbers
is exact, so it is undone by subtracting. Multiplying by a decay gamma < 1 destroys
log2(1/gamma) bits per number; `mul_gamma` moves exactly those bits into an `InfoBuffer`
and `div_gamma` takes them back out, so the product is undone bit for bit.

The buffer is a stack coder in the style of range ANS (Duda 2013; "bits back" as in
Townsend et al. 2019): one 64-bit state x per parameter, renormalized by spilling 32-bit
words to a (rows, parameters) array. Multiplying v by gamma = n / 2**32 pops a value
uniform in [0, n) from x and pushes one uniform in [0, 2**32); done as one step,
x <- (x // n) * 2**32 + ..., the state only grows, by log2(1/gamma) bits, and spills a
word once it is full. So the buffer holds the information bound plus at most a state and
a word per parameter, where the paper's array of Python integers held several times more.
"""
import math

import numpy as np

RADIX_BITS = 52            # fixed point: the integer i stands for i * 2**-52
MAX_ABS = 2.0 ** 10        # |value| < 2**(62 - RADIX_BITS): |i| <= 2**62, sums never wrap
GAMMA_BITS = 32            # a decay is represented as n / 2**32 with 1 <= n <= 2**32

_GAMMA_ONE = 1 << GAMMA_BITS
_GAMMA_MASK = np.uint64(_GAMMA_ONE - 1)
_LOW = np.uint64(1 << 32)  # ANS states live in [2**32, 2**64); words are 32 bits
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(GAMMA_BITS)
_FULL_SHIFT = np.uint64(64 - GAMMA_BITS)   # x * 2**32 / n fits in 64 bits iff x >> 32 < n


class ExactArithmeticError(ValueError):
    """Bad input or a broken invariant of exact reversible training."""


class FixedPointRangeError(ExactArithmeticError, OverflowError):
    """A value left the range the fixed-point representation can hold."""


class ReversalError(ExactArithmeticError, RuntimeError):
    """The reverse pass did not return exactly to the starting point."""


class PrecisionWarning(UserWarning):
    """The fixed-point values held too few significant bits for the hypergradient to meet
    its stated accuracy (the run is still exactly reversible: the numbers are those of
    training in fixed point, which then differs from float64 training)."""


STEP_SIZE_REMEDY = ("Training diverged or the problem is badly scaled: use smaller step "
                    "sizes, or rescale the inputs or weights.")
GRADIENT_REMEDY = ("It is a decaying average of the gradients, which smaller step sizes "
                   "do not shrink: make the gradients smaller (scale the loss down, or "
                   "rescale the inputs), or start nearer a minimum.")


def to_fixed(x, what="value", step=None, bits=RADIX_BITS, remedy=STEP_SIZE_REMEDY):
    """Float array -> int64 multiples of 2**-bits (round to nearest); refuses values with
    |x| >= 2**(62 - bits), the range in which two of them add without wrapping."""
    x = np.asarray(x, dtype=np.float64)
    check_range(x, what, step, 2.0 ** (62 - bits), remedy)
    return np.rint(x * 2.0 ** bits).astype(np.int64)


def to_float(i, bits=RADIX_BITS):
    """int64 fixed point -> float64, the nearest float (exact when |i| < 2**53).

    Reversal never needs the float to be exact, only the same float for the same integer.
    """
    return i * 2.0 ** -bits


def check_range(x, what, step=None, limit=MAX_ABS, remedy=STEP_SIZE_REMEDY):
    """Raise FixedPointRangeError unless every |x| < limit (NaN fails too); remedy: what
    the message tells the user to do."""
    if x.size and not (np.max(np.abs(x)) < limit):
        where = "" if step is None else f" at step {step}"
        bad = np.abs(x)
        worst = np.nanmax(bad) if np.isfinite(bad).any() else float("nan")
        raise FixedPointRangeError(
            f"{what} left the fixed-point range |x| < {limit:g}{where} "
            f"(largest magnitude {worst:.4g}, {np.count_nonzero(~(bad < limit))} entries "
            f"out of range). {remedy}")


def gamma_numerators(gammas, first_step=0, name="gammas"):
    """Decays -> numerators n with gamma ~= n / 2**GAMMA_BITS, as uint64 of the same shape.

    gammas: (T,) or (T, D) floats in (0, 1]; an error names the schedule (`name`) and the
    first bad step.
    """
    gammas = np.asarray(gammas, dtype=np.float64)
    bad = ~(np.isfinite(gammas) & (gammas > 0) & (gammas <= 1))
    if bad.any():
        t = np.argwhere(bad)[0]
        raise ExactArithmeticError(
            f"{name}[{', '.join(map(str, t))}] = {float(gammas[tuple(t)])!r} at step "
            f"{first_step + t[0]} is not a decay in (0, 1]. Decays must satisfy "
            "0 < decay <= 1; to learn them, squash a free parameter (e.g. a sigmoid).")
    n = np.rint(gammas * _GAMMA_ONE)
    if (n < 1).any():
        t = np.argwhere(n < 1)[0]
        raise ExactArithmeticError(
            f"{name}[{', '.join(map(str, t))}] = {float(gammas[tuple(t)])!r} at step "
            f"{first_step + t[0]} is below 2**-{GAMMA_BITS}, the smallest decay the exact "
            f"representation resolves; use decays >= {2.0 ** -GAMMA_BITS:.3g}.")
    return n.astype(np.uint64)


def represented_gammas(numerators):
    """The decays exactly as the fixed-point arithmetic applies them (float64)."""
    return numerators * (1.0 / _GAMMA_ONE)


def info_bound_bits(gammas, size=None):
    """sum_t log2(1/gamma_t) over steps and parameters: the bits any exact method keeps."""
    gammas = np.asarray(gammas, dtype=np.float64)
    bits = -np.sum(np.log2(gammas))
    return float(bits if gammas.ndim == 2 or size is None else bits * size)


class InfoBuffer:
    """The information `mul_gamma` destroys, kept per parameter as a range-ANS stack.

    state: (D,) uint64 in [2**32, 2**64); words: (rows, D) uint32, of which the first
    depth[i] rows of column i are in use. `nbytes` counts everything held.
    """

    def __init__(self, size, expected_bits=0.0):
        """size: number of parameters; expected_bits: bits per parameter to reserve for."""
        self.state = np.full(size, _LOW, dtype=np.uint64)
        self.depth = np.zeros(size, dtype=np.int32)       # spilled words per parameter
        rows = int(math.ceil(max(expected_bits, 0.0) / 32)) + 1
        self.words = np.zeros((rows, size), dtype=np.uint32)

    @property
    def nbytes(self):
        return self.state.nbytes + self.depth.nbytes + self.words.nbytes

    def is_empty(self):
        return bool(np.all(self.state == _LOW) and not self.depth.any())

    def held_bits(self):
        """(D,) bits of information each parameter's stack holds (spilled words plus what
        its state has grown by since empty)."""
        return 32.0 * self.depth + np.log2(self.state.astype(float)) - 32.0

    def spill(self, mask):
        """Move the low 32 bits of the masked states onto their word stacks."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return
        depth = self.depth[idx]
        need = int(depth.max()) + 1
        if need > self.words.shape[0]:
            # Grow by 1/16th at a time: the held bytes stay within ~6% of what is used.
            rows = max(need, self.words.shape[0] + max(1, self.words.shape[0] // 16))
            grown = np.zeros((rows, self.words.shape[1]), dtype=np.uint32)
            grown[:self.words.shape[0]] = self.words
            self.words = grown
        self.words[depth, idx] = (self.state[idx] & _MASK32).astype(np.uint32)
        self.depth[idx] = depth + 1
        self.state[idx] >>= np.uint64(32)

    def refill(self):
        """Pull a word back into every state that is below 2**32 (the inverse of spill)."""
        idx = np.flatnonzero(self.state < _LOW)
        if idx.size == 0:
            return
        depth = self.depth[idx] - 1
        if (depth < 0).any():
            raise ReversalError("the information buffer was emptied before the reverse "
                                "pass ended: the reverse steps do not mirror the forward ones")
        self.depth[idx] = depth
        self.state[idx] = (self.state[idx] << np.uint64(32)) | self.words[depth, idx]


def mul_gamma(v, n, buffer):
    """v * n / 2**32 for int64 v, within one unit of the last place; n: uint64 scalar or
    (D,), 1 <= n <= 2**32. The bits the product destroys go into buffer.

    With v = hi * 2**32 + lo: gamma * v = hi * n + (lo * n + s) / 2**32, where s = x mod n
    is popped from the state x ("bits back") and the low 32 bits of z = lo * n + s are
    pushed back: x <- (x // n) * 2**32 + z mod 2**32. No product exceeds 64 bits.
    """
    buffer.spill((buffer.state >> _FULL_SHIFT) >= n)    # make room: x * 2**32 / n < 2**64
    x = buffer.state
    x_div = x // n
    s = x - x_div * n
    z = (v.view(np.uint64) & _GAMMA_MASK) * n + s         # < 2**64
    buffer.state = (x_div << _SHIFT) | (z & _GAMMA_MASK)
    return (v >> GAMMA_BITS) * n.astype(np.int64) + (z >> _SHIFT).view(np.int64)


def div_gamma(v, n, buffer):
    """The exact inverse of mul_gamma(v, n, buffer)."""
    n_signed = n.astype(np.int64)
    hi = v // n_signed
    carry = (v - hi * n_signed).view(np.uint64)           # in [0, n)
    x = buffer.state
    z = (carry << _SHIFT) | (x & _GAMMA_MASK)
    lo = z // n
    buffer.state = (x >> _SHIFT) * n + (z - lo * n)
    buffer.refill()                                       # states that had spilled
    return hi * _GAMMA_ONE + lo.view(np.int64)
