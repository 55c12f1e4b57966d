"""Exact reversal of SGD with momentum in JAX: `reproducer.sgd_momentum`'s meaning and
`reproducer.exact`'s arithmetic, bit for bit, with each pass one jitted loop.

`sgd_momentum(loss, w0, alphas, gammas, theta)` is a `jax.custom_vjp`: the forward pass is a
`lax.while_loop` over the steps of Algorithm 3 (int64 fixed point, one range-ANS state per
parameter, 32-bit words spilled into a buffer preallocated from the information bound), and
its VJP a reversed `lax.scan` that undoes one step at a time and takes each step's gradient
and Hessian-vector product with JAX (Algorithm 2). Neither loop can raise, so each carries
flags (the first step out of range, a buffer overflow, a buffer emptied too early) that are
read after the pass and raised in Python with `reproducer.sgd`'s messages. Needs JAX's
64-bit mode. Inside this module `import jax` is the real jax (absolute imports).
"""
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from reproducer import exact, sgd
from reproducer.exact import ExactArithmeticError, FixedPointRangeError, ReversalError

_ONE = 1 << exact.GAMMA_BITS
_MASK = np.uint64(_ONE - 1)
_LOW = np.uint64(1 << 32)            # ANS states live in [2**32, 2**64)
_UNIT = 2.0 ** exact.RADIX_BITS
_LIMIT = 2.0 ** (62 - exact.RADIX_BITS)

X64_MESSAGE = ("reproducer.jax needs JAX's 64-bit mode (int64 fixed point, float64 weights): "
               "run jax.config.update('jax_enable_x64', True) at the start of the program, "
               "before any array is made (or set the environment variable JAX_ENABLE_X64=1).")
CONCRETE_MESSAGE = (
    "reproducer.jax.sgd_momentum jits its own forward and reverse passes and reads their "
    "range and reversal checks in Python, so it must be called on concrete arrays: call it "
    "(and jax.grad or jax.vjp of a function of it) outside jax.jit and jax.vmap. "
    "Hypergradients of hypergradients (jax.grad of jax.grad, jax.hessian) are not supported "
    "either: the reverse pass is not itself differentiable; use sgd_momentum_unrolled for "
    "second derivatives.")
CLOSURE_MESSAGE = sgd.CLOSURE_MESSAGE.replace("autograd", "JAX")
_CLOSURE_ERROR = CLOSURE_MESSAGE[0].upper() + CLOSURE_MESSAGE[1:]      # as a sentence
OVERFLOW_MESSAGE = (
    "the information buffer overflowed at step {t}: {count} parameters needed more than the "
    "{rows} words reserved for them (the information bound plus a margin). This should not "
    "happen; please report it, with the decays used.")


def check_x64():
    """Raise unless JAX's 64-bit mode is on."""
    if not jax.config.read("jax_enable_x64"):
        raise RuntimeError(X64_MESSAGE)


# --- reproducer.exact in jax.numpy, bit for bit --------------------------------------------

def to_fixed(x):
    """float64 -> int64 multiples of 2**-52, rounded to nearest even (exact.to_fixed)."""
    return jnp.rint(x * _UNIT).astype(jnp.int64)


def to_float(i):
    """int64 fixed point -> float64 (exact.to_float)."""
    return i.astype(jnp.float64) * (1.0 / _UNIT)


class Buffer(NamedTuple):
    """Range-ANS stacks (exact.InfoBuffer) of D parameters in K segments, each with its own
    preallocated words. state: (D,) uint64; depth: (D,) int32 words in use per parameter;
    words: K arrays (rows_k, D_k) uint32; segments: K static (start, stop) pairs."""
    state: jax.Array
    depth: jax.Array
    words: tuple


def _spill(mask, buf, segments):
    """Move the low 32 bits of the masked states onto their stacks (exact.InfoBuffer.spill);
    also returns how many masked parameters found their stack full (the word is dropped).
    With one decay per block the states fill up together, so most steps spill nothing and
    skip the scatter."""
    def spill(buf):
        low = (buf.state & _MASK).astype(jnp.uint32)
        words, full = [], jnp.int64(0)
        for (start, stop), w in zip(segments, buf.words):
            m, d = mask[start:stop], buf.depth[start:stop]
            rows = w.shape[0]
            full = full + jnp.sum(m & (d >= rows))
            row = jnp.where(m & (d < rows), d, rows)          # rows: out of bounds, dropped
            words.append(w.at[row, jnp.arange(stop - start)].set(low[start:stop], mode="drop"))
        state = jnp.where(mask, buf.state >> np.uint64(32), buf.state)
        return Buffer(state, buf.depth + mask.astype(jnp.int32), tuple(words)), full

    return lax.cond(jnp.any(mask), spill, lambda buf: (buf, jnp.int64(0)), buf)


def _refill(buf, segments):
    """Pull a word back into every state below 2**32 (exact.InfoBuffer.refill); also returns
    whether a stack was already empty (the reverse steps do not mirror the forward ones)."""
    need = buf.state < _LOW

    def refill(buf):
        depth = buf.depth - need.astype(jnp.int32)
        pieces = []
        for (start, stop), w in zip(segments, buf.words):
            row = jnp.clip(depth[start:stop], 0, w.shape[0] - 1)
            pieces.append(w[row, jnp.arange(stop - start)])
        word = jnp.concatenate(pieces).astype(jnp.uint64)
        state = jnp.where(need, (buf.state << np.uint64(32)) | word, buf.state)
        return Buffer(state, depth, buf.words), jnp.any(need & (depth < 0))

    return lax.cond(jnp.any(need), refill, lambda buf: (buf, jnp.bool_(False)), buf)


# --- exact division by a decay's numerator, vectorized ---------------------------------------
# x86 has no vector integer division, so XLA turns each 64-bit `//` into one scalar `div` per
# element (on this AVX2 machine, per step of the 784-50-50-50-10 network: mul_gamma 0.63 ms
# with it, 0.36 ms with `_divmod`; div_gamma 0.99 ms, 0.49 ms). `_divmod` gets the same
# quotient from a float64 estimate and one integer correction, all vectorizable operations.
#
# Error bound. Let u = 2**-53. For an integer x with |x| < 2**64 and 1 <= n <= 2**32, the
# estimate P = fl(fl(x) * fl(1/n)) (fl: round to nearest; `_to_float` rounds once) satisfies
# P = (x / n)(1 + e1)(1 + e2)(1 + e3) with |e_i| <= u, so |P - x/n| <= |x/n| (3u + 3u**2 + u**3)
# < 3.0001 |x/n| u. If that is below 1, floor(P) is within 1 of q = floor(x/n) (floors of two
# reals less than 1 apart differ by at most 1), so q is floor(P) - 1, floor(P) or floor(P) + 1,
# and the remainder r = x - floor(P) n (exact in wrapping 64-bit arithmetic, since its true
# value lies in [-n, 2n)) says which: one correction step (r < 0: q - 1; r >= n: q + 1) is exact.
# We require |x/n| <= 2**50: then |P - x/n| < 0.375 (a 1/n up to 5 units in the last place
# off would still do, should a device divide less exactly), and |floor(P)| <= 2**50 + 1 < 2**51,
# so the float -> integer step below (adding 1.5 * 2**52, reading the mantissa) is exact too.
# - mul_gamma's x // n: after the spill, x < n * 2**32, so x/n < 2**32 for every n.
# - div_gamma's z // n: z = carry * 2**32 + (x mod 2**32) with carry < n, so z/n < 2**32.
# - div_gamma's v // n for int64 v (|v| <= 2**63): |v/n| <= 2**50 for every v iff
#   n >= 2**13 = 8192, a decay >= 2**-19; below that (never met in practice) the whole vector
#   takes XLA's integer division instead (one lax.cond per step, not a per-element select).
_MAGIC = 1.5 * 2.0 ** 52                       # k + _MAGIC holds k in its low bits, |k| < 2**51
_MAGIC_BITS = np.int64(0x4338000000000000)     # the bits of _MAGIC
_EXP52 = np.uint64(0x4330000000000000)         # the bits of 2**52
_EXP84 = np.uint64(0x4530000000000000)         # the bits of 2**84
_SMALLEST_FAST = 2 ** 13                       # least n for which a signed quotient is exact


class Divisor(NamedTuple):
    """A step's numerators n (uint64, a scalar or (D,)), their reciprocals 1/n (float64, the
    same shape) and the least of them (a scalar), computed once per step (per block)."""
    n: jax.Array
    recip: jax.Array
    least: jax.Array


def divisor(n):
    """The Divisor of numerators n (uint64, 1 <= n <= 2**32)."""
    return Divisor(n, 1.0 / n.astype(jnp.float64), jnp.min(n))


def _to_float(x):
    """uint64 or int64 -> float64, rounded once to nearest, with vectorizable operations only
    (a 64-bit integer to float conversion is scalar on AVX2): the high and low 32-bit halves
    are made exactly (placed into the mantissas of 2**84 and 2**52), then added."""
    u = lax.bitcast_convert_type(x, jnp.uint64)
    lo = lax.bitcast_convert_type((u & _MASK) | _EXP52, jnp.float64) - 2.0 ** 52
    if x.dtype == jnp.int64:                   # the high half, offset to be non-negative
        hi_bits = (u >> np.uint64(32)) ^ np.uint64(1 << 31)
        hi_offset = 2.0 ** 84 + 2.0 ** 63
    else:
        hi_bits, hi_offset = u >> np.uint64(32), 2.0 ** 84
    hi = lax.bitcast_convert_type(hi_bits | _EXP84, jnp.float64) - hi_offset   # exact
    return hi + lo


def _divmod(x, n, recip):
    """(x // n, x % n), exactly as numpy's floor division, for x uint64 or int64, n uint64
    (1 <= n <= 2**32) and recip = 1.0 / n, provided |x / n| <= 2**50 (see the bound above)."""
    estimate = jnp.floor(_to_float(x) * recip)
    q = lax.bitcast_convert_type(estimate + _MAGIC, jnp.int64) - _MAGIC_BITS
    q = lax.bitcast_convert_type(q, x.dtype)
    n_signed = n.astype(jnp.int64)
    r = lax.bitcast_convert_type(x - q * n.astype(x.dtype), jnp.int64)   # true x - q n: [-n, 2n)
    below, above = r < 0, r >= n_signed
    q = q - below.astype(x.dtype) + above.astype(x.dtype)
    r = r + jnp.where(below, n_signed, 0) - jnp.where(above, n_signed, 0)
    return q, lax.bitcast_convert_type(r, x.dtype)


def mul_gamma(v, n, buf, segments):
    """v * n / 2**32 for int64 v, exactly as exact.mul_gamma (n: uint64 scalar or (D,), or
    their Divisor); returns (product, buffer, number of parameters whose stack overflowed)."""
    d = n if isinstance(n, Divisor) else divisor(n)
    n = d.n
    buf, full = _spill((buf.state >> np.uint64(64 - exact.GAMMA_BITS)) >= n, buf, segments)
    x = buf.state
    x_div, s = _divmod(x, n, d.recip)                  # x < n * 2**32: x_div < 2**32
    z = (lax.bitcast_convert_type(v, jnp.uint64) & _MASK) * n + s
    state = (x_div << np.uint64(exact.GAMMA_BITS)) | (z & _MASK)
    product = (v >> exact.GAMMA_BITS) * n.astype(jnp.int64) \
        + lax.bitcast_convert_type(z >> np.uint64(exact.GAMMA_BITS), jnp.int64)
    return product, buf._replace(state=state), full


def div_gamma(v, n, buf, segments):
    """The exact inverse of mul_gamma; returns (quotient, buffer, emptied too early?)."""
    d = n if isinstance(n, Divisor) else divisor(n)
    n = d.n
    n_signed = n.astype(jnp.int64)

    def fast(v):
        hi, carry = _divmod(v, n, d.recip)
        return hi, lax.bitcast_convert_type(carry, jnp.uint64)

    def small(v):                                      # some n < 2**13: |v / n| may be >= 2**50
        hi = jnp.floor_divide(v, n_signed)
        return hi, lax.bitcast_convert_type(v - hi * n_signed, jnp.uint64)

    hi, carry = lax.cond(d.least >= _SMALLEST_FAST, fast, small, v)      # carry in [0, n)
    x = buf.state
    z = (carry << np.uint64(exact.GAMMA_BITS)) | (x & _MASK)
    lo, z_mod = _divmod(z, n, d.recip)                 # z < n * 2**32: lo < 2**32
    buf = buf._replace(state=(x >> np.uint64(exact.GAMMA_BITS)) * n + z_mod)
    buf, emptied = _refill(buf, segments)
    return hi * np.int64(_ONE) + lax.bitcast_convert_type(lo, jnp.int64), buf, emptied


def new_buffer(bits, segments):
    """An empty Buffer whose segment k holds words for bits[k] bits per parameter, plus a
    margin; the row count is rounded up (to 1/8 of an octave) so that nearby decays reuse
    one compiled program."""
    size = segments[-1][1]
    words = []
    for (start, stop), b in zip(segments, bits):
        rows = int(math.ceil(1.02 * max(b, 0.0) / 32)) + 2
        rows = _round_up(rows)
        words.append(jnp.zeros((rows, stop - start), dtype=jnp.uint32))
    return Buffer(jnp.full(size, _LOW, dtype=jnp.uint64), jnp.zeros(size, dtype=jnp.int32),
                  tuple(words))


def _round_up(rows):
    """rows rounded up to m * 2**e with 8 <= m < 16."""
    if rows <= 16:
        return rows
    e = rows.bit_length() - 4
    return -(-rows >> e) << e


# --- the two passes -------------------------------------------------------------------------

class Setup(NamedTuple):
    """What the compiled passes depend on besides array shapes (hashable: jit's static key)."""
    loss: object          # loss(w, theta, t)
    sizes: tuple          # block sizes (one block unless blocks= was given)
    alpha_kind: str       # "step" (T,), "block" (T, K) or "param" (T, D)
    gamma_kind: str
    segments: tuple       # (start, stop) of each buffer: one per block for per-block decays
    callback: object


def _kind(shape, size, sizes):
    if len(shape) == 1:
        return "step"
    return "block" if shape[1] == len(sizes) < size else "param"


def _expand(row, kind, sizes):
    """Step t's values for every parameter: a scalar or (D,) (sgd.Schedule.at)."""
    if kind != "block":
        return row
    return jnp.concatenate([jnp.broadcast_to(row[k], (s,)) for k, s in enumerate(sizes)])


def _step_divisor(row, kind, sizes):
    """Step t's Divisor, the reciprocals and least numerator taken before expanding (once
    per block where the decays are per block)."""
    return Divisor(_expand(row, kind, sizes), _expand(1.0 / row.astype(jnp.float64), kind, sizes),
                   jnp.min(row))


def _collect(x, kind, sizes):
    """A per-parameter (D,) gradient summed into one step of a schedule (Schedule.collect)."""
    if kind == "step":
        return jnp.sum(x)
    if kind == "param":
        return x
    ends = np.cumsum(sizes)
    return jnp.stack([jnp.sum(x[end - s:end]) for s, end in zip(sizes, ends)])


# Forward error codes, in the order reproducer.sgd checks them within a step
_NONFINITE, _OVERFLOW, _V_STEP, _V, _W_STEP, _W = range(1, 7)
_RANGE_CHECKS = {_V_STEP: ("the step of the velocity v", exact.GRADIENT_REMEDY),
                 _V: ("the velocity v", exact.GRADIENT_REMEDY),
                 _W_STEP: ("the step of the weights w", exact.STEP_SIZE_REMEDY),
                 _W: ("the weights w", exact.STEP_SIZE_REMEDY)}


class Flag(NamedTuple):
    """The first failed check of a pass: code (0: none), step, count and largest magnitude."""
    code: jax.Array
    step: jax.Array
    count: jax.Array
    worst: jax.Array


def _no_flag():
    return Flag(jnp.int32(0), jnp.int32(-1), jnp.int64(0), jnp.float64(0.0))


def _raise_flag(flag, code, t, count, worst=0.0):
    first = (flag.code == 0) & (count > 0)
    return Flag(jnp.where(first, code, flag.code), jnp.where(first, t, flag.step),
                jnp.where(first, count, flag.count), jnp.where(first, worst, flag.worst))


def _check_range(flag, code, x, t):
    """Flag unless every |x| < 2**10 (NaN fails), as exact.check_range; the largest
    magnitude is computed only when an entry fails."""
    magnitude = jnp.abs(x)
    count = jnp.sum(~(magnitude < _LIMIT))

    def worst(magnitude):
        return jnp.where(jnp.any(jnp.isfinite(magnitude)),
                         jnp.max(jnp.where(jnp.isnan(magnitude), -jnp.inf, magnitude)), jnp.nan)

    return _raise_flag(flag, code, t, count,
                       lax.cond(count > 0, worst, lambda _: jnp.float64(0.0), magnitude))


def _host_callback(callback, w, v, g, t):
    callback(*sgd.read_only(np.asarray(w), np.asarray(v), np.asarray(g)), int(t))


def _loss_jaxpr(loss, D, theta):
    """loss(w, theta, t) traced for w of D float64 and theta's shape: (jaxpr, the arrays it
    closes over). Those arrays (a training set, typically) become arguments of the compiled
    passes: closed over by a jitted function, XLA would copy them into each compiled program
    as constants (measured: a 50,000-image training set took 1.6 GB more that way)."""
    closed = jax.make_jaxpr(loss)(jax.ShapeDtypeStruct((D,), jnp.float64),
                                  jax.ShapeDtypeStruct(theta.shape, theta.dtype),
                                  jax.ShapeDtypeStruct((), jnp.int32))
    return closed.jaxpr, closed.consts


def _explicit(setup, consts, D, theta):
    """setup.loss with its closed-over arrays replaced by `consts` (the compiled pass's
    arguments), as a function loss(w, theta, t)."""
    jaxpr, traced = _loss_jaxpr(setup.loss, D, theta)
    if len(traced) != len(consts) or any(np.shape(a) != np.shape(b)
                                         for a, b in zip(traced, consts)):
        raise ReversalError("the loss closes over different arrays than when sgd_momentum "
                            f"was called. {sgd.NOT_DETERMINISTIC}")
    return lambda w, th, t: jax.core.eval_jaxpr(jaxpr, consts, w, th, t)[0]


def _forward(setup, w_x, alphas, gammas, numerators, theta, buf, consts):
    """Algorithm 1 in fixed point, until step T or the first failed check; returns w_T as
    float64 too (converted here, not by a separate small program on the host's side)."""
    grad_loss = jax.grad(_explicit(setup, consts, w_x.shape[0], theta))
    T = alphas.shape[0]

    def step(carry):
        t, w_x, v_x, buf, flag = carry
        w = to_float(w_x)
        g = grad_loss(w, theta, t)
        flag = _raise_flag(flag, _NONFINITE, t, jnp.sum(~jnp.isfinite(g)))
        if setup.callback is not None:
            jax.debug.callback(_host_callback, setup.callback, w, to_float(v_x), g, t,
                               ordered=True)
        gamma = _expand(gammas[t], setup.gamma_kind, setup.sizes)
        n = _step_divisor(numerators[t], setup.gamma_kind, setup.sizes)
        alpha = _expand(alphas[t], setup.alpha_kind, setup.sizes)
        v_x, buf, full = mul_gamma(v_x, n, buf, setup.segments)        # Algorithm 3
        flag = _raise_flag(flag, _OVERFLOW, t, full)
        dv = -(1.0 - gamma) * g
        flag = _check_range(flag, _V_STEP, dv, t)
        v_x = v_x + to_fixed(dv)
        v = to_float(v_x)
        flag = _check_range(flag, _V, v, t)
        dw = alpha * v
        flag = _check_range(flag, _W_STEP, dw, t)
        w_x = w_x + to_fixed(dw)
        flag = _check_range(flag, _W, to_float(w_x), t)
        return t + 1, w_x, v_x, buf, flag

    def going(carry):
        return (carry[0] < T) & (carry[4].code == 0)

    start = (jnp.int32(0), w_x, jnp.zeros_like(w_x), buf, _no_flag())
    _, w_x, v_x, buf, flag = lax.while_loop(going, step, start)
    return to_float(w_x), w_x, v_x, buf, flag


def _gradient_and_hvp(loss, w, theta, t, u, want_theta):
    """g = grad_w L(w_t) and (H u, d(grad_w L . u)/d theta) by forward-over-reverse: the
    Hessian of L in (w, theta) is symmetric, so its product with (u, 0) holds both."""
    if want_theta:
        (g, _), (hw, htheta) = jax.jvp(lambda w_, th: jax.grad(loss, (0, 1))(w_, th, t),
                                       (w, theta), (u, jnp.zeros_like(theta)))
        return g, hw, htheta
    g, hw = jax.jvp(lambda w_: jax.grad(loss)(w_, theta, t), (w,), (u,))
    return g, hw, jnp.zeros_like(theta)


def _reverse(setup, want_theta, w_x, v_x, buf, alphas, gammas, numerators, theta, d_w,
             consts):
    """Algorithm 2: gradients of <d_w, w_T> w.r.t. (w0, alphas, gammas, theta), undoing the
    forward steps one at a time; also returns where the pass landed and whether a stack was
    emptied early (the last step, counting backwards, at which it happened), and the
    buffer (returned so that the donated input is undone in place)."""
    T = alphas.shape[0]
    loss = _explicit(setup, consts, w_x.shape[0], theta)

    def step(carry, xs):
        w_x, v_x, buf, d_w, d_v, d_theta, emptied_at = carry
        t, alpha_row, gamma_row, n_row = xs
        alpha = _expand(alpha_row, setup.alpha_kind, setup.sizes)
        gamma = _expand(gamma_row, setup.gamma_kind, setup.sizes)
        n = _step_divisor(n_row, setup.gamma_kind, setup.sizes)
        v = to_float(v_x)                                        # v_{t+1}
        d_alpha = _collect(d_w * v, setup.alpha_kind, setup.sizes)
        w_x = w_x - to_fixed(alpha * v)                          # w_t
        d_v = d_v + alpha * d_w
        g, hw, htheta = _gradient_and_hvp(loss, to_float(w_x), theta, t,
                                          (1.0 - gamma) * d_v, want_theta)
        v_x = v_x - to_fixed(-(1.0 - gamma) * g)
        v_x, buf, emptied = div_gamma(v_x, n, buf, setup.segments)   # v_t
        d_gamma = _collect(d_v * (to_float(v_x) + g), setup.gamma_kind, setup.sizes)
        d_w = d_w - hw
        d_theta = d_theta - htheta
        d_v = d_v * gamma
        emptied_at = jnp.where(emptied & (emptied_at < 0), t, emptied_at)
        return (w_x, v_x, buf, d_w, d_v, d_theta, emptied_at), (d_alpha, d_gamma)

    start = (w_x, v_x, buf, d_w, jnp.zeros_like(d_w), jnp.zeros_like(theta), jnp.int32(-1))
    xs = (jnp.arange(T, dtype=jnp.int32), alphas, gammas, numerators)
    (w_x, v_x, buf, d_w, _, d_theta, emptied_at), (d_alphas, d_gammas) = lax.scan(
        step, start, xs, reverse=True)
    empty = jnp.all(buf.state == _LOW) & ~jnp.any(buf.depth)
    return (d_w, d_alphas, d_gammas, d_theta), (w_x, v_x, empty, emptied_at), buf


# Donating the buffer lets the reverse pass undo it in place; a second backward pass finds
# it deleted and runs the forward pass again first (as reproducer.sgd does).
_forward_jit = jax.jit(_forward, static_argnums=0, donate_argnums=6)
_reverse_jit = jax.jit(_reverse, static_argnums=(0, 1), donate_argnums=(2, 3, 4))


# --- the differentiable function ------------------------------------------------------------

class _Call:
    """Per call: the compiled passes' Setup, the caller's stats dict (by identity) and the
    arrays the loss closes over (both passes get the same ones)."""

    def __init__(self, setup, stats, consts):
        self.setup, self.stats, self.consts = setup, stats, consts


def _concrete(*arrays):
    if any(isinstance(a, jax.core.Tracer) for a in arrays):
        raise ValueError(CONCRETE_MESSAGE)


def _flag_error(flag, D, rows):
    """The exception for a raised forward flag (D weights, rows: the words reserved)."""
    t, count, worst = int(flag.step), int(flag.count), float(flag.worst)
    if int(flag.code) == _NONFINITE:
        return ExactArithmeticError(
            f"the gradient of the loss at step {t} is not finite ({count} of {D} entries "
            "are NaN or infinite): training diverged or the loss has a singularity there. "
            "Use smaller step sizes or a loss that is finite everywhere.")
    if int(flag.code) == _OVERFLOW:
        return ExactArithmeticError(OVERFLOW_MESSAGE.format(t=t, count=count, rows=rows))
    what, remedy = _RANGE_CHECKS[int(flag.code)]
    return FixedPointRangeError(
        f"{what} left the fixed-point range |x| < {_LIMIT:g} at step {t} (largest "
        f"magnitude {worst:.4g}, {count} entries out of range). {remedy}")


def _forward_inputs(setup, w0, alphas, gammas, theta):
    """Checks the inputs (numpy, concrete); returns the forward pass's arguments."""
    w0_np = sgd.check_w0(np.asarray(w0))
    sgd.check_schedule("alphas", np.asarray(alphas), w0_np.size, setup.sizes)
    gammas_np = sgd.check_schedule("gammas", np.asarray(gammas), w0_np.size, setup.sizes,
                                   decay=True)
    numerators = exact.gamma_numerators(gammas_np)
    represented = exact.represented_gammas(numerators)
    bits = -np.log2(represented).sum(axis=0)
    if setup.gamma_kind == "block":
        per_segment = list(bits)
    else:
        per_segment = [float(np.max(bits))]
    w0_x = jnp.asarray(exact.to_fixed(w0_np, "w0"))
    buf = new_buffer(per_segment, setup.segments)
    return w0_np, w0_x, jnp.asarray(represented), jnp.asarray(numerators), buf


def _run_forward(call, w0, alphas, gammas, theta):
    """Checks the inputs, runs the forward pass, raises its flag."""
    _concrete(w0, alphas, gammas, theta)
    setup = call.setup
    w0_np, w0_x, represented, numerators, buf = _forward_inputs(setup, w0, alphas, gammas,
                                                                theta)
    try:
        w, w_x, v_x, buf, flag = _forward_jit(setup, w0_x, alphas, represented, numerators,
                                           theta, buf, call.consts)
    except jax.errors.UnexpectedTracerError:
        raise ValueError(_CLOSURE_ERROR) from None
    if int(flag.code):
        raise _flag_error(flag, w0_np.size, max(w.shape[0] for w in buf.words))
    if call.stats is not None:
        call.stats["buffer_bytes"] = sum(int(a.nbytes) for a in jax.tree.leaves(buf))
        sizes = np.array(setup.sizes) if setup.gamma_kind == "block" else w0_np.size
        scale = 1 if setup.gamma_kind == "param" else sizes
        call.stats["bound_bytes"] = float(np.sum(-np.log2(represented) * scale)) / 8
        call.stats["words_used"] = int(np.sum(np.asarray(buf.depth)))
    return w, w_x, v_x, buf, represented, numerators


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _sgd(call, w0, alphas, gammas, theta):
    return _run_forward(call, w0, alphas, gammas, theta)[0]


def _sgd_fwd(call, w0, alphas, gammas, theta):
    w, w_x, v_x, buf, represented, numerators = _run_forward(call, w0, alphas, gammas, theta)
    saved = (w0, alphas, gammas, theta, w_x, v_x, buf, represented, numerators)
    return w, saved


def _sgd_bwd(call, saved, d_w):
    w0, alphas, gammas, theta, w_x, v_x, buf, represented, numerators = saved
    if isinstance(d_w, jax.core.Tracer):
        raise sgd.second_order_error("sgd_momentum")
    if any(a.is_deleted() for a in jax.tree.leaves((w_x, v_x, buf))):
        _, w_x, v_x, buf, represented, numerators = _run_forward(
            _Call(call.setup, None, call.consts), w0, alphas, gammas, theta)
    grads, (w_end, v_end, empty, emptied_at), _ = _reverse_jit(
        call.setup, True, w_x, v_x, buf, alphas, represented, numerators, theta,
        jnp.asarray(d_w, dtype=jnp.float64), call.consts)
    if int(emptied_at) >= 0:
        raise ReversalError(
            f"at step {int(emptied_at)} the information buffer was emptied before the reverse "
            "pass ended: the reverse steps do not mirror the forward ones. "
            f"{sgd.NOT_DETERMINISTIC}")
    w0_x = exact.to_fixed(np.asarray(w0))
    sgd.check_returned([("weights", np.asarray(w_end), w0_x),
                        ("velocities", np.asarray(v_end), 0)], [_Emptied(bool(empty))])
    return grads


class _Emptied:
    def __init__(self, empty):
        self.empty = empty

    def is_empty(self):
        return self.empty


_sgd.defvjp(_sgd_fwd, _sgd_bwd)


def _segments(gamma_kind, sizes):
    if gamma_kind != "block":
        return ((0, sum(sizes)),)
    ends = np.cumsum(sizes)
    return tuple((int(end - s), int(end)) for s, end in zip(sizes, ends))


def _as_array(x, name):
    if x is None:
        raise ValueError(f"{name} is None.")
    return x if isinstance(x, jax.Array) else jnp.asarray(np.asarray(x, dtype=np.float64))


def sgd_momentum(loss, w0, alphas, gammas, theta, callback=None, stats=None, blocks=None):
    """w_T after T = len(alphas) steps of SGD with momentum, differentiable by JAX.

        v <- gamma_t v - (1 - gamma_t) grad_w loss(w, theta, t);   w <- w + alpha_t v

    The same function as reproducer.sgd_momentum, bit for bit on the same gradients:
    loss: scalar jax.numpy function loss(w, theta, t), t a traced int32 step number (select
        the minibatch with it, e.g. lax.dynamic_slice or a precomputed index table). It may
        close over arrays (its data): they are read once per call and passed to both
        compiled passes as arguments, so they are neither copied into the compiled code nor
        changed between the passes. Hyperparameters must come through theta.
    w0: (D,); alphas, gammas: (T,), (T, D), or (T, K) with `blocks` (a models.Layout or a
        list of K block sizes); theta: any float array (jnp.zeros(0) if the loss reads none).
    callback(w, v, g, t): called before each step with numpy arrays (a host callback: slow).
    stats: a dict to receive "buffer_bytes" (bytes the preallocated buffer holds),
        "bound_bytes" (the information bound) and "words_used" (32-bit words spilled).
    jax.grad / jax.vjp w.r.t. w0, alphas, gammas and theta run training backwards. Call it
    outside jax.jit (it jits its own passes and checks their flags in Python).
    """
    call, arrays = _prepare(loss, w0, alphas, gammas, theta, callback, stats, blocks)
    return _sgd(call, *arrays)


def _prepare(loss, w0, alphas, gammas, theta, callback, stats, blocks):
    check_x64()
    theta = sgd.check_theta(theta) if not isinstance(theta, jax.Array) else theta
    w0, alphas, gammas, theta = (_as_array(x, name) for x, name in
                                 ((w0, "w0"), (alphas, "alphas"), (gammas, "gammas"),
                                  (theta, "theta")))
    if w0.ndim != 1:
        sgd.check_w0(np.zeros(w0.shape))          # the shape error of reproducer.sgd
    sizes = tuple(sgd._block_sizes(blocks, w0.size))
    for name, values in (("alphas", alphas), ("gammas", gammas)):
        sgd.check_schedule(name, np.zeros(values.shape) + (0.5 if name == "gammas" else 0),
                           w0.size, sizes)
    if len(alphas) != len(gammas):
        raise ValueError(f"alphas has {len(alphas)} steps but gammas has {len(gammas)}; "
                         "give one step size and one decay per step.")
    gamma_kind = _kind(gammas.shape, w0.size, sizes)
    setup = Setup(loss, sizes, _kind(alphas.shape, w0.size, sizes), gamma_kind,
                  _segments(gamma_kind, sizes), callback)
    # (astype only where needed: even a conversion to the same dtype compiles a program)
    arrays = tuple(x if x.dtype == jnp.float64 and not x.weak_type else x.astype(jnp.float64)
                   for x in (w0, alphas, gammas, theta))
    _, consts = _loss_jaxpr(loss, w0.size, arrays[3])
    if any(isinstance(c, jax.core.Tracer) for c in consts):
        raise ValueError(_CLOSURE_ERROR)
    return _Call(setup, stats, tuple(jnp.asarray(c) for c in consts)), arrays


def precompile(loss, w0, alphas, gammas, theta, blocks=None):
    """Compile the forward and reverse passes for these arguments without running them, so
    that a timing or a memory measurement that follows leaves compilation out."""
    call, (w0, alphas, gammas, theta) = _prepare(loss, w0, alphas, gammas, theta, None, None,
                                                 blocks)
    _, w0_x, represented, numerators, buf = _forward_inputs(call.setup, w0, alphas, gammas,
                                                            theta)
    _forward_jit.lower(call.setup, w0_x, alphas, represented, numerators, theta,
                       buf, call.consts).compile()
    # jax.grad runs the VJP under an empty abstract mesh, which is part of jit's cache key
    with jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh((), ())):
        _reverse_jit.lower(call.setup, True, w0_x, w0_x, buf, alphas, represented,
                           numerators, theta, w0, call.consts).compile()


# --- references and models in jax.numpy ------------------------------------------------------

def sgd_momentum_unrolled(loss, w0, alphas, gammas, theta, blocks=None):
    """The same T steps as plain float64 SGD in a lax.scan (sgd.sgd_momentum_unrolled):
    jax.grad through it stores the trajectory. Jit it for speed."""
    sizes = tuple(sgd._block_sizes(blocks, np.size(w0)))
    alpha_kind = _kind(np.shape(alphas), np.size(w0), sizes)
    gamma_kind = _kind(np.shape(gammas), np.size(w0), sizes)
    grad_loss = jax.grad(loss)

    def step(carry, xs):
        w, v = carry
        t, alpha, gamma = xs
        gamma = _expand(gamma, gamma_kind, sizes)
        v = gamma * v - (1.0 - gamma) * grad_loss(w, theta, t)
        return (w + _expand(alpha, alpha_kind, sizes) * v, v), None

    T = len(alphas)
    (w, _), _ = lax.scan(step, (w0, jnp.zeros_like(w0)),
                         (jnp.arange(T, dtype=jnp.int32), alphas, gammas))
    return w


def mlp_predict(layout, w, inputs):
    """models.mlp_predict in jax.numpy: logits (N, outputs) of a tanh MLP."""
    h = inputs
    for k in range(1, len(layout) // 2 + 1):
        weights, biases = (layout.slices[f"layer{k}_{part}"] for part in ("weights", "biases"))
        out = h @ w[weights].reshape(layout.shapes[f"layer{k}_weights"]) + w[biases]
        h = jnp.tanh(out)
    return out


def cross_entropy(logits, targets):
    """models.cross_entropy in jax.numpy: mean cross-entropy, targets one-hot (N, C)."""
    return -jnp.sum(jax.nn.log_softmax(logits, axis=1) * targets) / logits.shape[0]
