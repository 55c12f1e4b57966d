"""Exactly reversible Adam and RMSprop: the paper's closing suggestion, carried out.

Each moment (Adam's m and s, RMSprop's s and v) decays by its own schedule into its own
information buffer, as SGD's velocity does, but is held in floating point: an int64
significand times 2**e, with one exponent e per parameter (`FloatingMoment`). A fixed radix
cannot hold both a squared gradient of 1e-27 and one of 1e6 to relative precision; with
its own exponent each parameter keeps 36 to 60 significant bits, whatever its scale. The
weights change by a step computed from the *new* moments only, so going backwards the
weight step is undone first, then the gradient at w_t is recomputed and each moment is
restored exactly.

The VJP of one step is taken by autograd on the plain float update (`_update`), which
differentiates through the Hessian-vector product as well; the reverse loop carries the
adjoints of the weights and of every moment back through the T steps.
"""
import autograd.numpy as anp
import numpy as np
from autograd import grad, make_vjp
from autograd.builtins import list as traced_list, tuple as traced_tuple
from autograd.extend import defvjp, primitive

from . import exact
from .sgd import (NOT_DETERMINISTIC, ExactMoment, Schedule, _block_sizes, _gradient,
                  check_returned, check_schedule, check_theta, check_w0, gradient_and_hvp,
                  read_only, reversible_primitive, step_values)
from .exact import ReversalError


class FloatingMoment(ExactMoment):
    """A decaying moment held as x * 2**e: int64 significands x, one exponent e per parameter.

    Adding an increment rounds it to the parameter's unit 2**e, so each parameter keeps
    PRECISION bits of its increments whatever their scale. The exponent changes only when
    it must: when a value or increment would reach 2**LIMIT units (overflow), or when a unit
    at least SLACK bits finer is wanted because both the value and the increment have
    shrunk below 2**(HEADROOM - SLACK) units: the increments of a parameter whose gradient
    starts late, or the value of one whose gradient has stopped and which only decays. Such
    changes are rare and logged by step, so the reverse pass restores them bit for bit; the
    decay itself is exact as for SGD's velocity (mul_gamma into a buffer). A finer unit is an
    exact left shift of x, so its log entry holds just the index and the old exponent (6
    bytes); a coarser one (overflow) loses low bits and also logs the old significand.
    """
    PRECISION = 48    # an increment that sets the unit is resolved to 48 bits
    HEADROOM = 48     # after a change of unit, |value| < 2**48 units: room to grow 4096x
    LIMIT = 60        # |x| and |increment| stay below 2**60 units: their sum never wraps
    SLACK = 12        # change to a finer unit only if it gains 12 bits (values keep >= 36)
    UNSET = 1100      # the exponent of a moment that has seen no increment (x = 0)
    FINEST = -1150    # below 2**-1074 float64 holds nothing: no unit finer than this
    _NONE = -2 ** 14  # "no wish" in _wanted_exponents

    def __init__(self, size, decays, name):
        super().__init__(size, decays, name)
        self.e = np.full(size, self.UNSET, dtype=np.int16)
        self.log = {}      # step -> (indices, old exponents, old significands of coarsened)

    def value(self, idx=slice(None)):
        """The moment as floats (of the parameters idx only, if given)."""
        with np.errstate(over="ignore"):    # inf only on a reverse pass gone wrong, caught later
            return np.ldexp(self.x[idx].astype(np.float64), self.e[idx])

    def _wanted_exponents(self, x, e, delta):
        """The exponent each parameter wants: its increment to PRECISION bits, but the value
        x * 2**e and the increment both below 2**HEADROOM units. Computed from the integer
        x, not from its float value, which may underflow."""
        _, e_delta = np.frexp(delta)                          # |delta| < 2**e_delta
        _, bits = np.frexp(x.astype(np.float64))              # |x| < 2**bits (one more if
        e_value = np.where(x != 0, e.astype(np.int64) + bits, self._NONE)  # x rounds up)
        e_big = np.maximum(e_value, np.where(delta != 0, e_delta, self._NONE))
        for_delta = np.where(delta != 0, e_delta - self.PRECISION, self._NONE)
        return np.maximum(np.maximum(for_delta, e_big - self.HEADROOM), self.FINEST)

    def add(self, delta, t):
        """x <- x + delta, first changing the exponents that must change; returns floats."""
        delta = np.broadcast_to(np.asarray(delta, dtype=np.float64), self.x.shape)
        if t == 0:           # every x is 0: choose the exponents, nothing to remember
            self._check_finite(delta, t)
            self.e[:] = np.where(delta != 0, self._wanted_exponents(self.x, self.e, delta),
                                 self.UNSET)
        units = np.ldexp(delta, -self.e)                      # the increment in units 2**e
        if t > 0:
            step, size = np.abs(units), np.abs(self.x)
            fine = 2.0 ** (self.HEADROOM - self.SLACK)
            change = ~(step < 2.0 ** self.LIMIT) | (size >= 2 ** self.LIMIT)  # or NaN
            change |= ((step < fine) & (size < fine) & ((delta != 0) | (self.x != 0))
                       & (self.e > self.FINEST))   # too coarse (delta may underflow to 0)
            idx = np.flatnonzero(change)
            if idx.size:
                self._change(idx, delta[idx], t)
                units[idx] = np.ldexp(delta[idx], -self.e[idx])
        self.x += np.rint(units).astype(np.int64)
        return self.value()

    def _change(self, idx, delta, t):
        """Give the parameters idx the exponents they want, logging what the reverse pass
        needs to restore the old ones."""
        self._check_finite(delta, t)
        e, x = self.e[idx], self.x[idx]
        want = self._wanted_exponents(x, e, delta)
        keep = want != e
        idx, e, x, want = idx[keep], e[keep], x[keep], want[keep]
        if not idx.size:
            return
        coarser = want > e
        self.log[t] = (idx.astype(np.int32), e, x[coarser])
        self.x[idx] = np.where(coarser, self._coarsened(x, e, want),
                               np.left_shift(x, np.where(coarser | (x == 0), 0, e - want)))
        self.e[idx] = want

    @staticmethod
    def _coarsened(x, e_old, e_new):
        return np.rint(np.ldexp(x.astype(np.float64), e_old - e_new)).astype(np.int64)

    def _check_finite(self, delta, t):
        if not np.all(np.isfinite(delta)):
            raise exact.FixedPointRangeError(
                f"the step of {self.name} at step {t} is not finite "
                f"({np.count_nonzero(~np.isfinite(delta))} entries): the gradients are too "
                "large for float64 arithmetic. Scale the loss down.")

    def subtract(self, delta, t):
        """The exact inverse of add(delta, t)."""
        self.x -= np.rint(np.ldexp(delta, -self.e)).astype(np.int64)
        if t in self.log:
            self._restore(t)
        if t == 0:
            self.e[:] = self.UNSET
        return self.value()

    def _restore(self, t):
        """Undo the changes of exponent made at step t: a finer unit by shifting back (its
        low bits must be zero), a coarser one from the logged significands."""
        idx, e_old, x_coarsened = self.log.pop(t)
        x, e = self.x[idx], self.e[idx]
        coarser = e > e_old
        ok = np.array_equal(x[coarser], self._coarsened(x_coarsened, e_old[coarser], e[coarser]))
        shift = np.where(coarser, 0, np.minimum(e_old - e, 63)).astype(np.int64)
        unset = e_old == self.UNSET
        old = np.right_shift(x, shift)
        ok &= (np.array_equal(np.left_shift(old, shift)[~unset & ~coarser], x[~unset & ~coarser])
               and not x[unset].any())
        if not ok:
            raise ReversalError(f"{self.name} at step {t} is not what the forward pass "
                                f"left there. {NOT_DETERMINISTIC}")
        old[coarser] = x_coarsened
        self.x[idx], self.e[idx] = old, e_old

    def is_empty(self):
        return super().is_empty() and not self.log

    @property
    def nbytes(self):
        logged = sum(a.nbytes for entry in self.log.values() for a in entry)
        return super().nbytes + self.e.nbytes + logged


@primitive
def _sqrt(s):
    """sqrt(s) for s >= 0, with derivative 0 at s = 0: a weight whose gradient has always
    been zero has s = m = 0, and its step m / (sqrt(s) + eps) does not move with s."""
    return np.sqrt(s)


defvjp(_sqrt, lambda root, s: lambda g: np.where(root > 0, g / (2 * np.where(root > 0, root, 1.0)), 0.0))


class Adam:
    """m <- b1 m + (1 - b1) g;  s <- b2 s + (1 - b2) g^2;
    w <- w - alpha (m / c1) / (sqrt(s / c2) + eps), with c = 1 - prod of the decays so far."""
    name = "adam"
    moments = (("m", "beta1s"), ("s", "beta2s"))
    arguments = ("beta1s", "beta2s")        # the decays in the order the function takes them
    bias_corrected = True

    @staticmethod
    def increment(k, g, new, h):
        return (1.0 - h["beta1s"]) * g if k == 0 else (1.0 - h["beta2s"]) * g ** 2

    @staticmethod
    def step(new, h):
        m, s = new
        return h["alphas"] * (m / h["c_beta1s"]) / (_sqrt(s / h["c_beta2s"]) + h["eps"])


class RMSprop:
    """s <- rho s + (1 - rho) g^2;  v <- gamma v - (1 - gamma) g / (sqrt(s) + eps);
    w <- w + alpha v. Momentum is needed: without it the step depends on the gradient at
    the very point the reverse pass is trying to recover, and cannot be undone exactly."""
    name = "rmsprop"
    moments = (("s", "rhos"), ("v", "gammas"))
    arguments = ("gammas", "rhos")
    bias_corrected = False

    @staticmethod
    def increment(k, g, new, h):
        if k == 0:
            return (1.0 - h["rhos"]) * g ** 2
        return -(1.0 - h["gammas"]) * g / (_sqrt(new[0]) + h["eps"])

    @staticmethod
    def step(new, h):
        return -h["alphas"] * new[1]


def _update(rule, old, g, h):
    """One step in plain floats: old moments, gradient, hyperparameters -> (new, u)."""
    new = []
    for k, (_, decay) in enumerate(rule.moments):
        new.append(h[decay] * old[k] + rule.increment(k, g, new, h))
    return traced_tuple((traced_list(new), rule.step(new, h)))   # containers autograd traces


def _bias_correction(decays):
    """(T, ...) decays -> 1 - cumulative product: Adam's c_t for every step."""
    return 1.0 - anp.exp(anp.cumsum(anp.log(decays), axis=0))


class _Run:
    """The exact state of one training run: weights, moments and their schedules."""

    def __init__(self, rule, w0, schedules, eps):
        self.rule, self.eps = rule, eps
        self.alphas = schedules["alphas"]
        self.moments = [FloatingMoment(w0.size, schedules[decay], f"the moment {name}")
                        for name, decay in rule.moments]
        self.schedules = {"alphas": self.alphas}
        for (_, decay), moment in zip(rule.moments, self.moments):
            self.schedules[decay] = moment.decays        # as represented exactly
            if rule.bias_corrected:
                self.schedules["c_" + decay] = Schedule(
                    _bias_correction(moment.decays.values), moment.decays.sizes)
        self.w0 = exact.to_fixed(w0, "w0")
        self.w = ExactMoment(w0.size, None, "the weights w")
        self.w.x[:] = self.w0

    def hypers(self, t):
        h = {name: schedule.at(t) for name, schedule in self.schedules.items()}
        h["eps"] = self.eps
        return h

    def values(self):
        return [moment.value() for moment in self.moments]

    def step(self, t, g):
        h, new = self.hypers(t), []
        for k, moment in enumerate(self.moments):
            moment.decay(t)
            new.append(moment.add(self.rule.increment(k, g, new, h), t))
        return self.w.add(-self.rule.step(new, h), t)

    def undo_position(self, t):
        return self.w.subtract(-self.rule.step(self.values(), self.hypers(t)))

    def undo_moments(self, t, g):
        h, new = self.hypers(t), self.values()
        for k in reversed(range(len(self.moments))):
            self.moments[k].subtract(self.rule.increment(k, g, new[:k], h), t)
            self.moments[k].undecay(t)

    def check_returned(self):
        check_returned([("weights", self.w.x, self.w0)] +
                       [(name, m.x, 0) for (name, _), m in zip(self.rule.moments, self.moments)],
                       self.moments)

    @property
    def nbytes(self):
        return sum(moment.nbytes for moment in self.moments)

    def bound_bytes(self):
        return sum(moment.bound_bytes() for moment in self.moments)


def _check(rule, w0, alphas, decays, eps, theta, blocks):
    w0 = check_w0(w0)
    sizes = _block_sizes(blocks, w0.size)
    T = len(np.asarray(alphas))
    schedules = {}
    for name, values in zip(["alphas"] + list(rule.arguments), [alphas] + list(decays)):
        values = check_schedule(name, values, w0.size, sizes, decay=name != "alphas")
        if len(values) != T:
            raise ValueError(f"{name} has {len(values)} steps but alphas has {T}; give one "
                             "value per step.")
        if name != "alphas" and rule.bias_corrected and T and np.any(values[0] >= 1.0):
            raise ValueError(f"{name} at step 0 must be below 1: Adam's bias correction "
                             f"divides by 1 - {name}[0].")
        schedules[name] = Schedule(values, sizes)
    eps = np.asarray(eps, dtype=np.float64)
    if eps.shape != () or not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be one positive finite number, got {eps!r}.")
    return w0, schedules, float(eps), check_theta(theta)


def _forward(rule, loss, w0, alphas, decays, eps, theta, callback, stats, blocks,
             replay=False):
    w0, schedules, eps, theta = _check(rule, w0, alphas, decays, eps, theta, blocks)
    run = _Run(rule, w0, schedules, eps)
    grad_loss = grad(loss)
    w = run.w.value()
    for t in range(len(run.alphas)):
        g = _gradient(grad_loss, w, theta, t)
        if callback is not None and not replay:
            w_, g_, *moments = read_only(w, g, *run.values())
            callback(w_, dict(zip([name for name, _ in rule.moments], moments)), g_, t)
        w = run.step(t, g)
    if stats is not None and not replay:
        stats["buffer_bytes"] = run.nbytes
        stats["bound_bytes"] = run.bound_bytes()
    return w, (run, theta)


def _reverse(rule, state, loss, d_w, want_theta):
    """The adjoints of (w, moments) carried back through the steps by autograd's VJP of
    one float step; the weights and moments are recomputed exactly on the way."""
    run, theta = state
    grad_loss = grad(loss)
    d_w = np.array(d_w, dtype=np.float64)
    d_moments = [np.zeros_like(d_w) for _ in rule.moments]
    d = {name: np.zeros(s.values.shape) for name, s in run.schedules.items()}
    d_eps, d_theta = 0.0, np.zeros(theta.shape)
    for t in reversed(range(len(run.alphas))):
        w = run.undo_position(t)                                   # w_t
        g, hvp = gradient_and_hvp(grad_loss, w, theta, t, want_theta)
        run.undo_moments(t, g)                                     # moments at t
        h = run.hypers(t)
        step_vjp, _ = make_vjp(lambda args: _update(rule, args[0], args[1], args[2]))(
            (run.values(), g, h))
        d_old, d_g, d_h = step_vjp((d_moments, -d_w))              # w_{t+1} = w_t - u
        d_moments = list(d_old)
        for name, schedule in run.schedules.items():
            d[name][t] = schedule.collect(d_h[name])
        d_eps += float(np.sum(d_h["eps"]))
        hw, htheta = hvp(d_g)
        d_w = d_w + hw
        if want_theta:
            d_theta = d_theta + htheta
    run.check_returned()
    if rule.bias_corrected:              # c_t = 1 - prod(decays[:t+1]) depends on every decay
        for _, decay in rule.moments:
            correction_vjp, _ = make_vjp(_bias_correction)(run.schedules[decay].values)
            d[decay] = d[decay] + correction_vjp(d["c_" + decay])
    decays = [d[decay] for decay in rule.arguments]
    return d_w, d["alphas"], decays, d_eps, d_theta


def _primitive(rule):
    def forward(loss, w0, alphas, decay_a, decay_b, eps, theta, callback, stats, blocks,
                replay=False):
        return _forward(rule, loss, w0, alphas, (decay_a, decay_b), eps, theta, callback,
                        stats, blocks, replay)

    def reverse(state, args, d_w, argnums):
        d_w0, d_alphas, (d_a, d_b), d_eps, d_theta = _reverse(rule, state, args[0], d_w,
                                                              want_theta=6 in argnums)
        grads = {1: d_w0, 2: d_alphas, 3: d_a, 4: d_b, 5: d_eps, 6: d_theta}
        return tuple(grads[i] for i in argnums)
    return reversible_primitive(forward, reverse, rule.name,
                                {1: "w0", 2: "alphas", 3: rule.arguments[0],
                                 4: rule.arguments[1], 5: "eps", 6: "theta"})


_adam, _rmsprop = _primitive(Adam), _primitive(RMSprop)


def adam(loss, w0, alphas, beta1s, beta2s, eps, theta, callback=None, stats=None,
         blocks=None):
    """w_T after T = len(alphas) steps of Adam with bias correction, exactly reversible.

        m <- b1 m + (1 - b1) g;   s <- b2 s + (1 - b2) g^2
        w <- w - alpha_t (m / (1 - prod b1)) / (sqrt(s / (1 - prod b2)) + eps)

    loss(w, theta, t): scalar autograd function. w0: (D,); alphas, beta1s, beta2s: (T,),
    (T, D), or (T, K) with blocks (see sgd_momentum); eps: a positive number.
    callback(w, moments, g, t) with moments = {"m": ..., "s": ...}; stats as for
    sgd_momentum (the bound is log2(1/b1) + log2(1/b2) bits per parameter and step).
    Differentiable by autograd w.r.t. w0, alphas, beta1s, beta2s, eps and theta.
    """
    return _adam(loss, w0, alphas, beta1s, beta2s, eps, theta, callback, stats, blocks)


def rmsprop(loss, w0, alphas, gammas, rhos, eps, theta, callback=None, stats=None,
            blocks=None):
    """w_T after T steps of RMSprop with momentum, exactly reversible.

        s <- rho s + (1 - rho) g^2;   v <- gamma v - (1 - gamma) g / (sqrt(s) + eps)
        w <- w + alpha_t v

    gammas (momentum) and rhos (squared-gradient decay): (T,), (T, D) or (T, K); the rest
    as for adam. Differentiable w.r.t. w0, alphas, gammas, rhos, eps and theta.
    """
    return _rmsprop(loss, w0, alphas, gammas, rhos, eps, theta, callback, stats, blocks)


def _unrolled(rule, loss, w0, alphas, decays, eps, theta, blocks=None):
    """The same steps in plain float64 autograd code (naive reverse mode when differentiated).
    Schedules as for adam/rmsprop; blocks expand (T, K) schedules per step."""
    at = step_values(blocks, np.size(w0))
    schedules = dict(zip(("alphas",) + rule.arguments, (alphas,) + tuple(decays)))
    if rule.bias_corrected:
        for decay in rule.arguments:
            schedules["c_" + decay] = _bias_correction(schedules[decay])

    grad_loss = grad(loss)
    w, moments = w0, [np.zeros(np.size(w0)) for _ in rule.moments]
    for t in range(len(alphas)):
        h = {name: at(values, t) for name, values in schedules.items()}
        h["eps"] = eps
        moments, u = _update(rule, moments, grad_loss(w, theta, t), h)
        w = w - u
    return w


def adam_unrolled(loss, w0, alphas, beta1s, beta2s, eps, theta, blocks=None):
    """Adam in plain float64 autograd code: the baseline for speed and memory."""
    return _unrolled(Adam, loss, w0, alphas, (beta1s, beta2s), eps, theta, blocks)


def rmsprop_unrolled(loss, w0, alphas, gammas, rhos, eps, theta, blocks=None):
    """RMSprop with momentum in plain float64 autograd code."""
    return _unrolled(RMSprop, loss, w0, alphas, (gammas, rhos), eps, theta, blocks)
