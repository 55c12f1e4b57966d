"""SGD with momentum whose reverse pass runs training backwards (Algorithms 1-3).

`sgd_momentum` is an autograd primitive: its VJP is Algorithm 2, fed by a *path* that
hands the backward loop w_t and v_t one step at a time. The exact path recomputes them by
undoing each step in fixed point (nothing stored per step but the information buffer);
the stored path keeps the float64 trajectory (the naive reverse mode, for comparison).
"""
import hashlib
import warnings
import weakref

import numpy as np
from autograd import grad, make_vjp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import Box

from . import exact
from .exact import ExactArithmeticError, ReversalError


class Schedule:
    """One value per step: values (T,) shared by all parameters, (T, K) one per block of
    consecutive parameters (`sizes`, K of them), or (T, D) one per parameter."""

    def __init__(self, values, sizes, names=None):
        """names: the K blocks' names for messages (e.g. a models.Layout's), or None."""
        self.values = values
        self.sizes = sizes
        self.names = names or [f"block {k}" for k in range(len(sizes))]
        self.per_block = values.ndim == 2 and values.shape[1] == len(sizes) < sum(sizes)
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)

    def __len__(self):
        return len(self.values)

    def at(self, t):
        """The value of step t for every parameter: a scalar or (D,)."""
        row = self.values[t]
        return np.repeat(row, self.sizes) if self.per_block else row

    def collect(self, x):
        """A per-parameter gradient (D,) summed into this schedule's shape for one step."""
        if self.values.ndim == 1:
            return np.sum(x)
        return np.add.reduceat(x, self.starts) if self.per_block else x

    def total(self, per_value):
        """Sum over steps and parameters of per_value, an array shaped like the values."""
        if self.values.ndim == 1:
            return float(np.sum(per_value) * sum(self.sizes))
        return float(np.sum(per_value * self.sizes) if self.per_block else np.sum(per_value))


NOT_DETERMINISTIC = ("The loss must be a deterministic function of (w, theta, t): draw "
                     "minibatches and noise from t, not from a global random state, and do "
                     "not change the data between the forward and the reverse pass.")


class ExactMoment:
    """A fixed-point vector x that is multiplied by a decay each step, exactly reversibly.

    decays: a Schedule of values in (0, 1]. A block with one decay per step gets a buffer
    of its own: dividing by one number per block is several times faster than by a
    different number per parameter, and each buffer reserves just its block's bound.
    """

    def __init__(self, size, decays, name, bits=exact.RADIX_BITS):
        """decays: a Schedule, or None for a vector that is only added to (the weights)."""
        self.name, self.bits = name, bits
        self.x = np.zeros(size, dtype=np.int64)
        self.buffers = []
        self.remedy = exact.STEP_SIZE_REMEDY if decays is None else exact.GRADIENT_REMEDY
        if decays is None:
            return
        self.numerators = exact.gamma_numerators(decays.values)
        self.decays = Schedule(exact.represented_gammas(self.numerators), decays.sizes)
        bound = -np.log2(self.decays.values).sum(axis=0)    # bits per parameter or block
        if decays.per_block:
            ends = np.cumsum(decays.sizes)
            self.segments = [slice(end - size, end) for size, end in zip(decays.sizes, ends)]
        else:
            self.segments, bound = [slice(0, size)], [np.max(bound)]
        self.buffers = [exact.InfoBuffer(seg.stop - seg.start, bits_per_parameter)
                        for seg, bits_per_parameter in zip(self.segments, bound)]

    def _apply(self, t, operation):
        n = self.numerators[t]
        for k, (seg, buffer) in enumerate(zip(self.segments, self.buffers)):
            self.x[seg] = operation(self.x[seg], n[k] if self.decays.per_block else n, buffer)

    def decay(self, t):
        """x <- decay_t * x, keeping the lost bits (Algorithm 3)."""
        self._apply(t, exact.mul_gamma)

    def undecay(self, t):
        """x <- x / decay_t, exactly: the inverse of decay(t)."""
        try:
            self._apply(t, exact.div_gamma)
        except ReversalError as error:
            raise ReversalError(f"at step {t} {error}. {NOT_DETERMINISTIC}") from None

    def add(self, delta, t=None):
        """x <- x + delta (float, rounded to fixed point); returns the new value as floats."""
        self.x += exact.to_fixed(delta, f"the step of {self.name}", t, self.bits, self.remedy)
        value = self.value()
        exact.check_range(value, self.name, t, 2.0 ** (62 - self.bits), self.remedy)
        return value

    def subtract(self, delta, t=None):
        """The exact inverse of add(delta, t)."""
        self.x -= exact.to_fixed(delta, bits=self.bits)
        return self.value()

    def value(self):
        return exact.to_float(self.x, self.bits)

    def is_empty(self):
        return all(buffer.is_empty() for buffer in self.buffers)

    @property
    def nbytes(self):
        return sum(buffer.nbytes for buffer in self.buffers)

    def bound_bytes(self):
        return self.decays.total(-np.log2(self.decays.values)) / 8


STATED_ACCURACY = 1e-9   # the README's relative error against the represented decays


class PrecisionCheck:
    """How many significant bits the fixed-point v and w held, per group of parameters
    that share a hyperparameter (the columns of the finer of the two schedules: all
    parameters, one block, or one parameter), and the hypergradient error that implies.

    v and w are multiples of 2**-52, so their precision is absolute: a velocity whose
    largest magnitude is 2**(b - 52) holds b bits. Each step rounds v by ~0.6 units (rms);
    the errors decay with gamma, so about n = min(T, 1 / (1 - mean gamma**2)) of them add
    up, and a hypergradient built from v (d_alphas = d_w . v, ...) is off by about
    SAFETY_V sqrt(n) 2**-b. Through alpha v each moves w by alpha / (1 - mean gamma) units
    in all, and w's own rounding adds one unit per step: SAFETY T (alpha m + 1) units over
    T steps, against the weights' magnitude. The factors are calibrated on the tests' MLP
    (T = 60 to 400): the estimates lie 1.2 to 50 times above the measured errors. They do
    not model how much the training dynamics amplify the errors (the measured ones grew
    14-23x from T = 100 to 400, as float64's own did). Per step: a few vector operations.
    """
    SAFETY_V = 3.0   # the largest of T steps of a random walk of 0.6-unit steps: 5 sigma
    SAFETY = 8.0     # w's path: its errors are also amplified by the training dynamics

    def __init__(self, alphas, gammas, size):
        fine = max((alphas, gammas), key=lambda s: 0 if s.values.ndim == 1 else
                   1 if s.per_block else 2)
        self.kind = ("all" if fine.values.ndim == 1 else "block" if fine.per_block
                     else "parameter")
        self.starts, self.sizes, self.names = fine.starts, fine.sizes, fine.names
        groups = {"all": 1, "block": len(self.sizes), "parameter": size}[self.kind]
        self.peak = np.zeros(groups, dtype=np.int64)      # largest |v| so far, in units
        self.when = np.zeros(groups, dtype=np.int32)      # the step that set it
        self.alpha_max = self.group_max(self._per_parameter(np.abs(alphas.values), alphas,
                                                            np.max, size))
        # v's rounding errors decay by gamma each step: about n = 1 / (1 - mean gamma**2)
        # of them add up in v, and each moves w by alpha / (1 - mean gamma) in all.
        T = max(len(alphas), 1)
        mean = lambda values: self.group_max(self._per_parameter(values, gammas, np.mean, size))
        self.n = np.minimum(T, 1.0 / np.maximum(1.0 - mean(gammas.values ** 2), 1.0 / T))
        self.m = np.minimum(T, 1.0 / np.maximum(1.0 - mean(gammas.values), 1.0 / T))

    @staticmethod
    def _per_parameter(values, schedule, over_steps, size):
        """over_steps (np.max or np.mean) of a schedule's values for every parameter: (D,)."""
        top = over_steps(values, axis=0) if len(values) else np.zeros(values.shape[1:])
        if schedule.per_block:
            return np.repeat(top, schedule.sizes)
        return np.broadcast_to(top, (size,))

    def group_max(self, a):
        """(D,) -> (groups,): the largest entry of each group."""
        if self.kind == "all":
            return np.max(a, keepdims=True)
        return np.maximum.reduceat(a, self.starts) if self.kind == "block" else a

    def update(self, t, v):
        """Record the magnitude of v (int64 units) after step t."""
        if self.kind == "all":
            top = max(v.max(), -v.min()) if v.size else 0
        elif self.kind == "block":     # two reductions, no (D,) temporary
            top = np.maximum(np.maximum.reduceat(v, self.starts),
                             -np.minimum.reduceat(v, self.starts))
        else:
            top = np.abs(v)
        larger = top > self.peak
        np.copyto(self.peak, top, where=larger)
        np.copyto(self.when, t, where=larger)

    def name(self, k):
        if self.kind == "all":
            return "all parameters (one shared schedule)"
        if self.kind == "block":
            return self.names[k]
        block = int(np.searchsorted(self.starts, k, side="right")) - 1
        inside = f" of {self.names[block]}" if len(self.sizes) > 1 else ""
        return f"parameter {k}{inside} (per-parameter schedule)"

    def report(self, w0, w_T, T):
        """Bits held and estimated relative errors per group, a dict of (groups,) arrays:
        error_v (from v's rounding, directly and through alpha v) and error_w (from w's
        own rounding); estimated_error, the larger."""
        n = self.n
        peak = self.peak.astype(np.float64)
        # w's scale: the largest weight of the group's block (a weight near 0 in a block
        # of weights of order 1 is no less precise than they are).
        big = np.maximum(np.abs(w0), np.abs(w_T))
        if self.kind == "parameter":
            big = np.repeat(np.maximum.reduceat(big, self.starts), self.sizes)
        scale = self.group_max(big).astype(np.float64)
        moved = self.group_max((w0 != w_T).astype(np.int8)) > 0
        path = np.where(moved, self.SAFETY * T / np.maximum(scale, 1.0), 0.0)
        error_v = np.maximum(np.where(peak > 0, self.SAFETY_V * np.sqrt(n)
                                      / np.maximum(peak, 1.0), 0.0),
                             path * self.alpha_max * self.m)
        with np.errstate(divide="ignore"):
            return {"bits_v": np.log2(peak), "bits_w": np.log2(scale),
                    "largest_v": peak * 2.0 ** -exact.RADIX_BITS,
                    "step_of_largest_v": self.when.copy(), "error_v": error_v,
                    "error_w": path, "estimated_error": np.maximum(error_v, path)}

    def warn(self, report):
        """A PrecisionWarning about the worst group if its estimate exceeds the stated
        accuracy."""
        error = report["estimated_error"]
        bad = np.flatnonzero(error > STATED_ACCURACY)
        if bad.size == 0:
            return
        k = bad[np.argmax(error[bad])]
        others = f" ({bad.size} of {error.size} groups fall short)" if error.size > 1 else ""
        if report["error_v"][k] >= report["error_w"][k]:
            held = (f"the velocity v held at most {report['bits_v'][k]:.0f} significant bits "
                    f"(its largest magnitude was {report['largest_v'][k]:.3g}, at step "
                    f"{report['step_of_largest_v'][k]}; v is fixed point in units of 2**-52)")
            up = int(np.ceil(np.log2(error[k] / STATED_ACCURACY))) + 2
            remedy = (f"Multiply the loss by 2**{up} and divide the step sizes by 2**{up}: "
                      "w follows the same path while v and the hypergradients grow by that "
                      "factor (with decays very near 1 it is the increments (1 - gamma) g "
                      "that are too small).")
        else:
            largest = 2.0 ** (report["bits_w"][k] - exact.RADIX_BITS)
            held = (f"the weights w held at most {report['bits_w'][k]:.0f} significant bits "
                    f"(largest magnitude {largest:.3g}; w is fixed point in units of 2**-52)")
            remedy = ("Rescale the parameters to order 1: train u = 2**k w, with the loss "
                      "reading w = u / 2**k and step sizes times 4**k.")
        warnings.warn(exact.PrecisionWarning(
            f"sgd_momentum: in {self.name(k)}{others} {held}, so the hypergradient may be "
            f"off by up to about {error[k]:.1g} (relative), not within the "
            f"{STATED_ACCURACY:g} of well-scaled problems. {remedy}"), stacklevel=2)


class ExactPath:
    """w and v as fixed-point integers; v *= gamma moves the lost bits to a buffer."""

    def __init__(self, w0, alphas, gammas, gradient=None):
        self.alphas = alphas
        self.v = ExactMoment(w0.size, gammas, "the velocity v")
        self.gammas = self.v.decays
        self.w = ExactMoment(w0.size, None, "the weights w")
        self.w0 = exact.to_fixed(w0, "w0")
        self.w.x[:] = self.w0
        self.precision = PrecisionCheck(alphas, gammas, w0.size)

    def start(self):
        return self.w.value(), self.v.value()

    def step(self, t, g):
        """Algorithm 3, one step from (w_t, v_t) with gradient g; returns floats w, v."""
        self.v.decay(t)
        v = self.v.add(-(1.0 - self.gammas.at(t)) * g, t)
        self.precision.update(t, self.v.x)
        return self.w.add(self.alphas.at(t) * v, t), v

    def check_precision(self, warn=True):
        """After the forward pass: the PrecisionCheck report; warns if it falls short."""
        report = self.precision.report(self.w0, self.w.x, len(self.alphas))
        if warn:
            self.precision.warn(report)
        return report

    def undo_position(self, t, v_next):
        """w_{t+1} -> w_t exactly: w <- w - alpha_t v_{t+1}."""
        return self.w.subtract(self.alphas.at(t) * v_next)

    def undo_velocity(self, t, g):
        """v_{t+1} -> v_t exactly, given g = grad L(w_t)."""
        self.v.subtract(-(1.0 - self.gammas.at(t)) * g)
        self.v.undecay(t)
        return self.v.value()

    def check_returned(self):
        """After the reverse pass: are we bit for bit where the forward pass began?"""
        check_returned([("weights", self.w.x, self.w0), ("velocities", self.v.x, 0)],
                       [self.v])

    @property
    def nbytes(self):
        return self.v.nbytes


def check_returned(pairs, moments):
    """Raise ReversalError unless every (name, value, start) pair is back at its start
    and every moment's buffer is empty."""
    off = [(name, np.count_nonzero(value != start), value.size) for name, value, start in pairs]
    if any(count for _, count, _ in off) or not all(m.is_empty() for m in moments):
        differ = ", ".join(f"{count} of {size} {name}" for name, count, size in off)
        raise ReversalError(f"the reverse pass did not land exactly on the starting point "
                            f"({differ} differ). {NOT_DETERMINISTIC}")


def float_step(w, v, alpha, gamma, g):
    """One step of Algorithm 1 in plain float64: (w_t, v_t) -> (w_{t+1}, v_{t+1})."""
    v = gamma * v - (1.0 - gamma) * g
    return w + alpha * v, v


class StoredPath:
    """Plain float64 SGD that stores w_t and v_t at every step (naive reverse mode)."""

    def __init__(self, w0, alphas, gammas, gradient=None):
        self.alphas, self.gammas = alphas, gammas
        self.ws, self.vs = [np.array(w0, dtype=np.float64)], [np.zeros(w0.size)]

    def start(self):
        return self.ws[0], self.vs[0]

    def step(self, t, g):
        w, v = float_step(self.ws[-1], self.vs[-1], self.alphas.at(t), self.gammas.at(t), g)
        self.ws.append(w)
        self.vs.append(v)
        return w, v

    def undo_position(self, t, v_next):
        self.ws.pop()
        return self.ws[-1]

    def undo_velocity(self, t, g):
        self.vs.pop()
        return self.vs[-1]

    def check_returned(self):
        pass

    def check_precision(self, warn=True):
        return None      # plain float64

    @property
    def nbytes(self):
        return sum(a.nbytes for a in self.ws) + sum(a.nbytes for a in self.vs)


class CheckpointPath:
    """Plain float64 SGD that stores (w_t, v_t) every `every` steps (sqrt(T) by default)
    and, going backwards, recomputes the steps of one stretch at a time from its start."""

    def __init__(self, w0, alphas, gammas, gradient, every=None):
        self.alphas, self.gammas, self.gradient = alphas, gammas, gradient
        self.every = every or max(1, int(np.ceil(np.sqrt(len(alphas)))))
        self.w, self.v = np.array(w0, dtype=np.float64), np.zeros(w0.size)
        self.checkpoints = {0: (self.w, self.v)}
        self.stretch = {}                    # t -> (w_t, v_t) of the stretch being reversed

    def start(self):
        return self.w, self.v

    def step(self, t, g):
        self.w, self.v = float_step(self.w, self.v, self.alphas.at(t), self.gammas.at(t), g)
        if (t + 1) % self.every == 0:
            self.checkpoints[t + 1] = (self.w, self.v)
        return self.w, self.v

    def _state(self, t):
        if t not in self.stretch:
            first = t - t % self.every
            w, v = self.checkpoints.pop(first)
            self.stretch = {first: (w, v)}
            for tau in range(first, t):
                w, v = float_step(w, v, self.alphas.at(tau), self.gammas.at(tau),
                                  self.gradient(w, tau))
                self.stretch[tau + 1] = (w, v)
        return self.stretch[t]

    def undo_position(self, t, v_next):
        return self._state(t)[0]

    def undo_velocity(self, t, g):
        return self.stretch.pop(t)[1]

    def check_returned(self):
        pass

    def check_precision(self, warn=True):
        return None      # plain float64

    @property
    def nbytes(self):
        states = list(self.checkpoints.values()) + list(self.stretch.values())
        return sum(w.nbytes + v.nbytes for w, v in states)


PATHS = {"exact": ExactPath, "stored": StoredPath, "checkpoint": CheckpointPath}


def _block_sizes(blocks, size):
    """blocks: None, a models.Layout, or a sequence of block sizes -> list of sizes."""
    if blocks is None:
        return [size]
    sizes = [s.stop - s.start for s in blocks.slices.values()] if hasattr(blocks, "slices") \
        else [int(s) for s in blocks]
    if sum(sizes) != size or min(sizes) < 1:
        raise ValueError(f"blocks must split the {size} parameters into consecutive blocks; "
                         f"their sizes {sizes} add up to {sum(sizes)}.")
    return sizes


def refuse_complex(name, values):
    """A ValueError if values are complex: converting them to float64 would silently drop
    their imaginary parts (numpy only warns)."""
    if np.iscomplexobj(values):
        raise ValueError(f"{name} is complex ({np.asarray(values).dtype}): training runs in "
                         "float64 and would drop the imaginary parts. Pass real numbers (a "
                         "complex hyperparameter as two real entries of theta, its real and "
                         "imaginary parts).")


def check_w0(w0):
    """w0 as a finite float64 array of shape (D,), or an error that says what to pass."""
    refuse_complex("w0", w0)
    w0 = np.asarray(w0, dtype=np.float64)
    if w0.ndim != 1:
        raise ValueError(f"w0 must be a 1-D array of shape (D,), got shape {w0.shape}; "
                         "flatten structured parameters (see reproducer.models).")
    if not np.all(np.isfinite(w0)):
        raise ValueError("w0 contains NaN or infinite values.")
    return w0


def check_schedule(name, values, size, sizes, decay=False):
    """values as a float64 (T,), (T, D) or (T, K) array; step sizes must be finite and
    decays in (0, 1] (the error names the step). sizes: the K block sizes."""
    refuse_complex(name, values)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim not in (1, 2) or (values.ndim == 2 and values.shape[1] not in (size, len(sizes))):
        blocks_hint = f", or (T, K) = (T, {len(sizes)}) for the blocks" if len(sizes) > 1 else ""
        raise ValueError(f"{name} must have shape (T,) or (T, D) = (T, {size})"
                         f"{blocks_hint}; got {values.shape}.")
    if decay:
        exact.gamma_numerators(values, name=name)   # raises, naming the step, if not in (0, 1]
    elif not np.all(np.isfinite(values)):
        t = np.argwhere(~np.isfinite(values))[0][0]
        raise ValueError(f"{name} at step {t} is not finite.")
    return values


def _check_inputs(w0, alphas, gammas, theta, blocks=None):
    """Arrays of the documented shapes, or an error that says what to pass instead."""
    w0 = check_w0(w0)
    sizes = _block_sizes(blocks, w0.size)
    alphas = check_schedule("alphas", alphas, w0.size, sizes)
    gammas = check_schedule("gammas", gammas, w0.size, sizes, decay=True)
    if len(alphas) != len(gammas):
        raise ValueError(f"alphas has {len(alphas)} steps but gammas has {len(gammas)}; "
                         "give one step size and one decay per step.")
    names = list(blocks.names) if hasattr(blocks, "names") else None
    return (w0, Schedule(alphas, sizes, names), Schedule(gammas, sizes, names),
            check_theta(theta))


def check_theta(theta):
    """theta as a float64 array, or an error that says what to pass."""
    if theta is None:
        raise ValueError("theta is None: pass the hyperparameters the loss reads as an array "
                         "(np.zeros(0) if it reads none); the loss is called as "
                         "loss(w, theta, t).")
    try:
        complex_dtype = np.iscomplexobj(theta)
        if not complex_dtype:
            theta = np.asarray(theta, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("theta must be an array of numbers, the hyperparameters the loss "
                         "reads as loss(w, theta, t).") from None
    refuse_complex("theta", theta)
    return theta     # may hold -inf, e.g. a log-strength that switches a penalty off


def read_only(*arrays):
    """Views a callback can read but not write: changing g or w in place would make the
    reverse pass recompute a different trajectory."""
    views = [np.asarray(a).view() for a in arrays]
    for view in views:
        view.flags.writeable = False
    return views


CLOSURE_MESSAGE = (
    "the loss's gradient depends on a value autograd is differentiating, which the loss "
    "reads from its closure. Hyperparameters must reach the loss through theta: pass them "
    "as theta and read them as loss(w, theta, t).")


def _gradient(grad_loss, w, theta, t):
    g = grad_loss(w, theta, t)
    if isinstance(g, Box):
        raise ValueError(f"at step {t} {CLOSURE_MESSAGE}")
    if not np.all(np.isfinite(g)):
        raise ExactArithmeticError(
            f"the gradient of the loss at step {t} is not finite "
            f"({np.count_nonzero(~np.isfinite(g))} of {g.size} entries are NaN or infinite): "
            "training diverged or the loss has a singularity there. Use smaller step sizes "
            "or a loss that is finite everywhere.")
    return g


def gradient_and_hvp(grad_loss, w, theta, t, want_theta):
    """g = grad_w L(w_t) and a function u -> (H u, d(grad_w L . u)/d theta or None): both
    Hessian-vector products at once, by differentiating grad_w L . u (Pearlmutter 1994)."""
    if want_theta:
        vjp, g = make_vjp(lambda wt: grad_loss(wt[0], wt[1], t))((w, theta))
        return g, vjp
    vjp, g = make_vjp(lambda w_: grad_loss(w_, theta, t))(w)
    return g, lambda u: (vjp(u), None)


def _forward(loss, w0, alphas, gammas, theta, callback=None, stats=None, method="exact",
             warn=True):
    """Algorithm 1 along a path: returns (w_T as float64, the path, v_T as float64).
    warn: whether a shortfall in precision gives a PrecisionWarning."""
    grad_loss = grad(loss)
    path = PATHS[method](w0, alphas, gammas, lambda w, t: _gradient(grad_loss, w, theta, t))
    w, v = path.start()
    for t in range(len(alphas)):
        g = _gradient(grad_loss, w, theta, t)
        if callback is not None:
            callback(*read_only(w, v, g), t)
        w, v = path.step(t, g)
    precision = path.check_precision(warn)
    if stats is not None:
        stats["precision"] = precision
        stats["buffer_bytes"] = path.nbytes
        stats["bound_bytes"] = path.gammas.total(-np.log2(path.gammas.values)) / 8
    return w, path, v


def _reverse(path, v, loss, theta, d_w, want_theta):
    """Algorithm 2: gradients of <d_w, w_T> w.r.t. (w0, alphas, gammas, theta)."""
    alphas, gammas = path.alphas, path.gammas
    d_alphas, d_gammas = np.zeros(alphas.values.shape), np.zeros(gammas.values.shape)
    d_w = np.array(d_w, dtype=np.float64)
    d_v = np.zeros_like(d_w)
    d_theta = np.zeros(theta.shape)
    grad_loss = grad(loss)
    for t in reversed(range(len(alphas))):
        d_alphas[t] = alphas.collect(d_w * v)
        w = path.undo_position(t, v)                           # w_t
        g, hvp = gradient_and_hvp(grad_loss, w, theta, t, want_theta)
        v = path.undo_velocity(t, g)                           # v_t
        d_v += alphas.at(t) * d_w
        d_gammas[t] = gammas.collect(d_v * (v + g))
        gamma = gammas.at(t)
        hw, htheta = hvp((1.0 - gamma) * d_v)
        d_w -= hw
        if want_theta:
            d_theta -= htheta
        d_v *= gamma
        del hvp, hw, htheta    # free this step's graph before the next one is built
    path.check_returned()
    return d_w, d_alphas, d_gammas, d_theta


# The VJP needs the state the forward pass ended on. Autograd calls the VJP maker right
# after the primitive returns, with the answer; we key the state by the answer's id and
# let go of it when the answer is garbage-collected.
_states = {}


def second_order_error(name):
    return NotImplementedError(
        f"hypergradients of hypergradients are not supported: {name}'s reverse pass is not "
        "itself differentiable (autograd.hessian of a function of it, or a derivative taken "
        f"through a loss that calls {name} while the outer run is differentiated). For "
        "second derivatives use the unrolled loop (sgd_momentum_unrolled, adam_unrolled, "
        "rmsprop_unrolled: plain autograd to any order, memory growing with T), or finite "
        "differences of the hypergradient.")


def _traces(arg):
    """The autograd traces boxing arg, outermost first."""
    traces = []
    while isinstance(arg, Box):
        traces.append(arg._trace)
        arg = arg._value
    return traces


def _fingerprint(x):
    """A digest of x's shape and float64 bytes: shows whether an input changed in place
    between the forward and the reverse pass without keeping a copy of it."""
    a = np.ascontiguousarray(x, dtype=np.float64)
    digest = hashlib.blake2b(repr(a.shape).encode(), digest_size=16)
    digest.update(a)
    return digest.digest()


def reversible_primitive(forward, reverse, name, inputs):
    """An autograd primitive whose VJP runs training backwards.

    forward(*args, replay=False) -> (w_T, state); with replay=True it must skip callbacks.
    reverse(state, args, d_w, argnums) -> the gradients w.r.t. args[i] for i in argnums.
    name: the function's name for messages; inputs: {position: name} of the array
    arguments, which must not change between the forward and the reverse pass.
    """
    @primitive
    def run(*args):
        w_T, state = forward(*args)
        fingerprints = {i: _fingerprint(args[i]) for i in inputs}
        _states[id(w_T)] = state, fingerprints
        weakref.finalize(w_T, _states.pop, id(w_T), None)
        return w_T

    def vjp_maker(argnums, ans, args, kwargs):
        saved = dict(zip(("state", "fingerprints"), _states.pop(id(ans))))

        def vjp(d_w):
            if isinstance(d_w, Box):
                raise second_order_error(name)
            for i, fingerprint in saved["fingerprints"].items():
                if _fingerprint(args[i]) != fingerprint:
                    raise ValueError(
                        f"{inputs[i]} was changed in place between {name}'s forward and "
                        "reverse pass, so the reverse pass would not retrace training. "
                        f"Pass a copy ({inputs[i]}.copy()) if you need to change it.")
            state = saved.pop("state", None)
            if state is None:   # a second backward pass: rebuild the forward state first
                _, state = forward(*args, replay=True)
            return reverse(state, args, d_w, argnums)
        return vjp

    defvjp_argnums(run, vjp_maker)

    def call(*args):
        traces = {trace for arg in args for trace in _traces(arg)}
        if len(traces) > 1:
            raise second_order_error(name)
        if traces:
            return run(*args)
        return forward(*args)[0]     # not being differentiated: keep no state
    return call


def _sgd_forward(loss, w0, alphas, gammas, theta, callback, stats, blocks, method,
                 replay=False):
    inputs = _check_inputs(w0, alphas, gammas, theta, blocks)
    if replay:
        callback = stats = None
    w_T, path, v_T = _forward(loss, *inputs, callback, stats, method, warn=not replay)
    return w_T, (path, v_T, inputs[3])


def _sgd_reverse(state, args, d_w, argnums):
    path, v_T, theta = state
    grads = _reverse(path, v_T, args[0], theta, d_w, want_theta=4 in argnums)
    return tuple(grads[i - 1] for i in argnums)


_sgd_momentum = reversible_primitive(_sgd_forward, _sgd_reverse, "sgd_momentum",
                                     {1: "w0", 2: "alphas", 3: "gammas", 4: "theta"})


def sgd_momentum(loss, w0, alphas, gammas, theta, callback=None, stats=None, blocks=None,
                 method="exact"):
    """w_T after T = len(alphas) steps of SGD with momentum, differentiable by autograd.

        v <- gamma_t v - (1 - gamma_t) grad_w loss(w, theta, t);   w <- w + alpha_t v

    loss: scalar autograd function loss(w, theta, t); t selects the minibatch.
    w0: (D,); alphas, gammas: (T,), (T, D), or (T, K) with `blocks`; theta: any array.
    blocks: a models.Layout (or list of K sizes) of consecutive parameter blocks, so that
        schedules of shape (T, K) give one value per block (e.g. per layer), cheaply.
    callback(w, v, g, t) is called before each step with floats w_t, v_t and the gradient.
    stats: a dict to receive "buffer_bytes" (bytes the buffer holds), "bound_bytes"
        (the information bound, sum of log2(1/gamma) over steps and parameters, in bytes)
        and "precision" (method "exact": PrecisionCheck.report, the significant bits v and
        w held and the estimated relative error, per group; None otherwise).
    A PrecisionWarning says when v or w held too few bits (v and w are fixed point in units
    of 2**-52) for the hypergradient to be within STATED_ACCURACY, and what to rescale.
    method: "exact" (reversible fixed point, the default); for comparison, "stored" (keeps
        the float64 trajectory: naive reverse mode) or "checkpoint" (keeps every
        sqrt(T)-th state and recomputes the steps in between going backwards).
    The VJP w.r.t. w0, alphas, gammas and theta runs training backwards (Algorithm 2).
    """
    if method not in PATHS:
        raise ValueError(f"method must be one of {sorted(PATHS)}, got {method!r}.")
    return _sgd_momentum(loss, w0, alphas, gammas, theta, callback, stats, blocks, method)


def sgd_momentum_unrolled(loss, w0, alphas, gammas, theta, blocks=None):
    """The same T steps in plain float64 autograd code: the reference the exact VJP is
    tested against, and the naive reverse mode (autograd keeps every intermediate).
    Called on plain arrays it is plain float64 SGD. Shapes as for sgd_momentum."""
    at = step_values(blocks, np.size(w0))
    grad_loss = grad(loss)
    w, v = w0, np.zeros(np.shape(w0))
    for t in range(len(alphas)):
        gamma = at(gammas, t)
        v = gamma * v - (1.0 - gamma) * grad_loss(w, theta, t)
        w = w + at(alphas, t) * v
    return w


def step_values(blocks, size):
    """at(schedule, t): step t's values of a (T,), (T, D) or per-block (T, K) schedule,
    by indexing, so that autograd differentiates through it (unrolled loops)."""
    sizes = _block_sizes(blocks, size)
    block_of = np.repeat(np.arange(len(sizes)), sizes)     # block number of each parameter

    def at(schedule, t):
        per_block = np.ndim(schedule) == 2 and np.shape(schedule)[1] == len(sizes) < sum(sizes)
        return schedule[t][block_of] if per_block else schedule[t]
    return at
