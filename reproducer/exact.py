"""Exact fixed-point arithmetic with an information buffer (the paper's Algorithm 3).

Weights and velocities are held as int64 counts of 2**-RADIX_BITS. Adding two such numbers
is exact, so it is undone by subtracting. Multiplying by a decay gamma < 1 destroys
log2(1/gamma) bits per number; `mul_gamma` moves exactly those bits into an `InfoBuffer`
and `div_gamma` takes them back out, so the product is undone bit for bit.

The buffer is a stack coder in the style of range ANS (Duda 2013; "bits back" as in
Townsend et al. 2019): one 64-bit state per parameter, renormalized by spilling 32-bit
words to a (rows, parameters) array. It holds within a few percent of the information
bound, where the paper's array of Python integers held several times more.
"""
import math

import numpy as np

RADIX_BITS = 52            # fixed point: the integer i stands for i * 2**-52
MAX_ABS = 2.0 ** 10        # |value| < 1024, so |i| <= 2**62 and a sum of two never wraps
GAMMA_BITS = 26            # a decay is represented as n / 2**26 with 1 <= n <= 2**26

_SCALE = 2.0 ** RADIX_BITS
_INV_SCALE = 2.0 ** -RADIX_BITS
_GAMMA_ONE = 1 << GAMMA_BITS
_GAMMA_MASK = np.uint64(_GAMMA_ONE - 1)
_LOW = 1 << 32             # ANS states live in [2**32, 2**64); words are 32 bits
_MASK32 = np.uint64(0xFFFFFFFF)
# A fresh state already holds GAMMA_BITS bits (of zeros): `mul_gamma` pops before it pushes,
# and the first pop must never reach below an empty stack ("bits back" needs initial bits).
_START = np.uint64(1 << (32 + GAMMA_BITS))


class ExactArithmeticError(ValueError):
    """Bad input or a broken invariant of exact reversible training."""


class FixedPointRangeError(ExactArithmeticError, OverflowError):
    """A value left the range the fixed-point representation can hold."""


class ReversalError(ExactArithmeticError, RuntimeError):
    """The reverse pass did not return exactly to the starting point."""


def to_fixed(x, what="value", step=None):
    """Float array -> int64 fixed point (round to nearest); refuses values out of range."""
    x = np.asarray(x, dtype=np.float64)
    check_range(x, what, step)
    return np.rint(x * _SCALE).astype(np.int64)


def to_float(i):
    """int64 fixed point -> float64, the nearest float (exact when |value| < 2).

    Reversal never needs the float to be exact, only the same float for the same integer.
    """
    return i * _INV_SCALE


def check_range(x, what, step=None):
    """Raise FixedPointRangeError unless every |x| < MAX_ABS (NaN fails too)."""
    if x.size and not (np.max(np.abs(x)) < MAX_ABS):
        where = "" if step is None else f" at step {step}"
        bad = np.abs(x)
        worst = np.nanmax(bad) if np.isfinite(bad).any() else float("nan")
        raise FixedPointRangeError(
            f"{what} left the fixed-point range |x| < {MAX_ABS:g}{where} "
            f"(largest magnitude {worst:.4g}, {np.count_nonzero(~(bad < MAX_ABS))} entries "
            "out of range). Training diverged or the problem is badly scaled: use smaller "
            "step sizes, or rescale the inputs or weights.")


def gamma_numerators(gammas, first_step=0):
    """Decays -> numerators n with gamma ~= n / 2**GAMMA_BITS, as uint64 of the same shape.

    gammas: (T,) or (T, D) floats in (0, 1]; an error names the first bad step.
    """
    gammas = np.asarray(gammas, dtype=np.float64)
    bad = ~(np.isfinite(gammas) & (gammas > 0) & (gammas <= 1))
    if bad.any():
        t = np.argwhere(bad)[0]
        raise ExactArithmeticError(
            f"gammas[{', '.join(map(str, t))}] = {gammas[tuple(t)]!r} at step "
            f"{first_step + t[0]} is not a decay in (0, 1]. Momentum decays must satisfy "
            "0 < gamma <= 1; to learn them, squash a free parameter (e.g. a sigmoid).")
    n = np.rint(gammas * _GAMMA_ONE)
    if (n < 1).any():
        t = np.argwhere(n < 1)[0]
        raise ExactArithmeticError(
            f"gammas[{', '.join(map(str, t))}] = {gammas[tuple(t)]!r} at step "
            f"{first_step + t[0]} is below 2**-{GAMMA_BITS}, the smallest decay the exact "
            f"representation resolves; use gamma >= {2.0 ** -GAMMA_BITS:.3g}.")
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
    """A stack of information, one per parameter, coded with range ANS.

    push/pop pairs are exact inverses: popping returns exactly what was pushed, last in
    first out, independently for every parameter. `nbytes` counts everything held.
    """

    def __init__(self, size, expected_bits=0.0):
        """size: number of parameters; expected_bits: bits per parameter to reserve for."""
        self.state = np.full(size, _START, dtype=np.uint64)
        self.depth = np.zeros(size, dtype=np.int32)       # spilled words per parameter
        rows = int(math.ceil(max(expected_bits, 0.0) / 32)) + 1
        self.words = np.zeros((rows, size), dtype=np.uint32)

    @property
    def nbytes(self):
        return self.state.nbytes + self.depth.nbytes + self.words.nbytes

    def is_empty(self):
        return bool(np.all(self.state == _START) and not self.depth.any())

    def _spill(self, mask):
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

    def _refill(self):
        """Pull a word back into every state that dropped below 2**32."""
        idx = np.flatnonzero(self.state < _LOW)
        if idx.size == 0:
            return
        depth = self.depth[idx] - 1
        if (depth < 0).any():
            raise ExactArithmeticError("information buffer popped while empty: the "
                                       "pops do not mirror the pushes")
        self.depth[idx] = depth
        self.state[idx] = (self.state[idx] << np.uint64(32)) | self.words[depth, idx]

    def push_bits(self, r, k):
        """Push r (uint64, each < 2**k, k <= 32): exactly k bits per parameter."""
        self._spill(self.state >= np.uint64(1 << (64 - k)))
        self.state = (self.state << np.uint64(k)) | r

    def pop_bits(self, k):
        """Pop what push_bits(r, k) pushed; returns r (uint64)."""
        r = self.state & np.uint64((1 << k) - 1)
        self.state >>= np.uint64(k)
        self._refill()
        return r

    # A value s in [0, n) uses the slots c of [0, 2**32) with floor(c * n / 2**32) = s:
    # f = ceil((2**32 - u) / n) of them, where u = cum(s) * n - s * 2**32 is in [0, n).
    # With n <= 2**26 every f >= 64, so the coding is within ~1e-4 bits of log2(n).
    # Integer division by one n per step is cheap: numpy uses libdivide for it.

    def pop_uniform(self, n):
        """Pop a value s in [0, n), n uint64 <= 2**26 (scalar or per parameter)."""
        x = self.state
        prod = (x & _MASK32) * n
        s = prod >> np.uint64(32)
        e = prod & _MASK32                          # = slot * n - s * 2**32
        k = e // n                                  # offset of the slot within s's slots
        f = (np.uint64(_LOW - 1) + n - (e - k * n)) // n
        self.state = f * (x >> np.uint64(32)) + k
        self._refill()
        return s

    def push_uniform(self, s, n):
        """Push s in [0, n): the exact inverse of pop_uniform(n)."""
        s_high = s << np.uint64(32)
        cum = (s_high + (n - np.uint64(1))) // n    # first slot of s
        f = (np.uint64(_LOW - 1) + n - (cum * n - s_high)) // n
        self._spill((self.state >> np.uint64(32)) >= f)   # state >= f * 2**32, no overflow
        x = self.state
        if np.ndim(n) == 0:
            # f is F or F + 1 for one F: two divisions by a scalar beat one by an array.
            F = (np.uint64(_LOW) // n)
            q = np.where(f == F, x // F, x // (F + np.uint64(1)))
        else:
            q = x // f
        self.state = (q << np.uint64(32)) + cum + (x - q * f)


def mul_gamma(v, n, buffer):
    """v * n / 2**GAMMA_BITS for int64 v, within one unit; the lost bits go to buffer.

    Splits v = hi * 2**26 + lo so no product exceeds 63 bits: gamma * v = hi * n +
    (lo * n + s) / 2**26, where s in [0, n) is popped first ("bits back") and the low
    26 bits of lo * n + s are pushed.
    """
    lo = v.view(np.uint64) & _GAMMA_MASK
    s = buffer.pop_uniform(n)
    z = lo * n + s                                          # < 2**52
    buffer.push_bits(z & _GAMMA_MASK, GAMMA_BITS)
    return (v >> GAMMA_BITS) * n.astype(np.int64) + (z >> np.uint64(GAMMA_BITS)).astype(np.int64)


def div_gamma(v, n, buffer):
    """The exact inverse of mul_gamma(v, n, buffer)."""
    n_signed = n.astype(np.int64)
    hi = v // n_signed
    carry = (v - hi * n_signed).astype(np.uint64)          # in [0, n)
    z = (carry << np.uint64(GAMMA_BITS)) | buffer.pop_bits(GAMMA_BITS)
    lo = z // n
    buffer.push_uniform(z - lo * n, n)
    return hi * _GAMMA_ONE + lo.astype(np.int64)
