"""SGD with momentum whose reverse pass runs training backwards (Algorithms 1-3).

`sgd_momentum` is an autograd primitive: its VJP is Algorithm 2, fed by a *path* that
hands the backward loop w_t, v_t one step at a time. The exact path recomputes them by
undoing each step in fixed point (nothing stored per step but the information buffer);
the stored path keeps the float64 trajectory (the naive reverse mode, for comparison).
"""
import weakref

import numpy as np
from autograd import grad, make_vjp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import Box

from . import exact
from .exact import ExactArithmeticError, ReversalError


class ExactPath:
    """w and v as fixed-point integers; v *= gamma moves the lost bits to a buffer."""

    def __init__(self, w0, alphas, gammas):
        self.numerators = exact.gamma_numerators(gammas)
        self.gammas = exact.represented_gammas(self.numerators)
        self.alphas = alphas
        self.w = exact.to_fixed(w0, "w0")
        self.v = np.zeros_like(self.w)
        per_param_bits = exact.info_bound_bits(self.gammas) / (
            w0.size if self.gammas.ndim == 2 else 1)
        self.buffer = exact.InfoBuffer(w0.size, per_param_bits)
        self.w0 = self.w.copy()

    def start(self):
        return exact.to_float(self.w), exact.to_float(self.v)

    def step(self, t, g):
        """One forward step from (w_t, v_t) with gradient g; returns floats w_{t+1}, v_{t+1}."""
        decay = exact.mul_gamma(self.v, self.numerators[t], self.buffer)
        self.v = decay - exact.to_fixed((1.0 - self.gammas[t]) * g, "the velocity step", t)
        v = exact.to_float(self.v)
        exact.check_range(v, "the velocity v", t)
        self.w = self.w + exact.to_fixed(self.alphas[t] * v, "the weight step", t)
        w = exact.to_float(self.w)
        exact.check_range(w, "the weights w", t)
        return w, v

    def undo_position(self, t, v_next):
        """w_{t+1} -> w_t, exactly: Algorithm 3's w <- w - alpha_t v_{t+1}."""
        self.w = self.w - exact.to_fixed(self.alphas[t] * v_next)
        return exact.to_float(self.w)

    def undo_velocity(self, t, g):
        """v_{t+1} -> v_t, exactly, given g = grad L(w_t)."""
        self.v = exact.div_gamma(self.v + exact.to_fixed((1.0 - self.gammas[t]) * g),
                                 self.numerators[t], self.buffer)
        return exact.to_float(self.v)

    def check_returned(self):
        """After the reverse pass: are we bit for bit where the forward pass began?"""
        off_w = np.count_nonzero(self.w != self.w0)
        off_v = np.count_nonzero(self.v)
        if off_w or off_v or not self.buffer.is_empty():
            raise ReversalError(
                f"the reverse pass did not land exactly on the starting point ({off_w} of "
                f"{self.w.size} weights and {off_v} velocities differ). The loss must be a "
                "deterministic function of (w, theta, t): draw minibatches and noise from t, "
                "not from a global random state, and do not change data between passes.")

    @property
    def nbytes(self):
        return self.buffer.nbytes


class StoredPath:
    """Plain float64 SGD that stores w_t and v_t at every step (naive reverse mode)."""

    def __init__(self, w0, alphas, gammas):
        self.alphas, self.gammas = alphas, gammas
        self.ws, self.vs = [np.array(w0, dtype=np.float64)], [np.zeros(w0.size)]

    def start(self):
        return self.ws[0], self.vs[0]

    def step(self, t, g):
        v = self.gammas[t] * self.vs[-1] - (1.0 - self.gammas[t]) * g
        w = self.ws[-1] + self.alphas[t] * v
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

    @property
    def nbytes(self):
        return sum(a.nbytes for a in self.ws) + sum(a.nbytes for a in self.vs)


PATHS = {"exact": ExactPath, "stored": StoredPath}


def _check_inputs(w0, alphas, gammas, theta):
    """Arrays of the documented shapes, or an error that says what to pass instead."""
    w0 = np.asarray(w0, dtype=np.float64)
    if w0.ndim != 1:
        raise ValueError(f"w0 must be a 1-D array of shape (D,), got shape {w0.shape}; "
                         "flatten structured parameters (see reproducer.models).")
    if not np.all(np.isfinite(w0)):
        raise ValueError("w0 contains NaN or infinite values.")
    schedules = []
    for name, s in (("alphas", alphas), ("gammas", gammas)):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim not in (1, 2) or (s.ndim == 2 and s.shape[1] != w0.size):
            raise ValueError(f"{name} must have shape (T,) or (T, D) = (T, {w0.size}), "
                             f"got {s.shape}.")
        schedules.append(s)
    alphas, gammas = schedules
    if len(alphas) != len(gammas):
        raise ValueError(f"alphas has {len(alphas)} steps but gammas has {len(gammas)}; "
                         "give one step size and one decay per step.")
    if not np.all(np.isfinite(alphas)):
        t = np.argwhere(~np.isfinite(alphas))[0][0]
        raise ValueError(f"alphas at step {t} is not finite.")
    exact.gamma_numerators(gammas)   # raises, naming the step, if a decay is not in (0, 1]
    theta = np.asarray(theta, dtype=np.float64)
    return w0, alphas, gammas, theta


def _gradient(grad_loss, w, theta, t):
    g = grad_loss(w, theta, t)
    if not np.all(np.isfinite(g)):
        raise ExactArithmeticError(
            f"the gradient of the loss at step {t} is not finite ({np.count_nonzero(~np.isfinite(g))} "
            f"of {g.size} entries are NaN or infinite): training diverged or the loss has a "
            "singularity there. Use smaller step sizes or a loss that is finite everywhere.")
    return g


def _forward(loss, w0, alphas, gammas, theta, callback=None, stats=None, method="exact"):
    """Run T steps of Algorithm 1 along a path; returns (w_T float64, path)."""
    path = PATHS[method](w0, alphas, gammas)
    grad_loss = grad(loss)
    w, v = path.start()
    for t in range(len(alphas)):
        g = _gradient(grad_loss, w, theta, t)
        if callback is not None:
            callback(w, v, g, t)
        w, v = path.step(t, g)
    if stats is not None:
        stats["buffer_bytes"] = path.nbytes
        stats["bound_bytes"] = exact.info_bound_bits(path.gammas, w0.size) / 8
    path.v_final = v
    return w, path


def _reverse(path, loss, theta, d_w, want_theta):
    """Algorithm 2: gradients of <d_w, w_T> w.r.t. (w0, alphas, gammas, theta)."""
    alphas, gammas = path.alphas, path.gammas
    per_step_alpha, per_step_gamma = alphas.ndim == 1, gammas.ndim == 1
    d_alphas, d_gammas = np.zeros(alphas.shape), np.zeros(gammas.shape)
    d_w = np.array(d_w, dtype=np.float64)
    d_v = np.zeros_like(d_w)
    d_theta = np.zeros(theta.shape)
    grad_loss = grad(loss)
    v = path.v_final
    for t in reversed(range(len(alphas))):
        d_alphas[t] = np.dot(d_w, v) if per_step_alpha else d_w * v
        w = path.undo_position(t, v)
        if want_theta:
            hvp, g = make_vjp(lambda wt: grad_loss(wt[0], wt[1], t))((w, theta))
        else:
            hvp, g = make_vjp(lambda w_: grad_loss(w_, theta, t))(w)
        v = path.undo_velocity(t, g)
        d_v += alphas[t] * d_w
        d_gammas[t] = np.dot(d_v, v + g) if per_step_gamma else d_v * (v + g)
        # Both Hessian-vector products at once, by differentiating grad_w L . ((1-gamma) d_v)
        products = hvp((1.0 - gammas[t]) * d_v)
        if want_theta:
            d_w -= products[0]
            d_theta -= products[1]
        else:
            d_w -= products
        d_v *= gammas[t]
    path.check_returned()
    return d_w, d_alphas, d_gammas, d_theta


# The VJP needs the path the forward pass ended on. Autograd calls the VJP maker right
# after the primitive returns, with the answer; we key the path by the answer's id and
# let go of it when the answer is garbage-collected.
_paths = {}


@primitive
def _sgd_momentum(loss, w0, alphas, gammas, theta, callback, stats, method):
    w_T, path = _forward(loss, w0, alphas, gammas, theta, callback, stats, method)
    _paths[id(w_T)] = path
    weakref.finalize(w_T, _paths.pop, id(w_T), None)
    return w_T


def _sgd_momentum_vjp(argnums, ans, args, kwargs):
    loss, w0, alphas, gammas, theta, _, _, method = args
    state = {"path": _paths.pop(id(ans))}

    def vjp(d_w):
        path = state.pop("path", None)
        if path is None:   # a second backward pass: rebuild the forward state first
            _, path = _forward(loss, w0, alphas, gammas, theta, method=method)
        grads = _reverse(path, loss, np.asarray(theta, dtype=np.float64), d_w, 4 in argnums)
        return tuple(grads[i - 1] for i in argnums)
    return vjp


defvjp_argnums(_sgd_momentum, _sgd_momentum_vjp)


def sgd_momentum(loss, w0, alphas, gammas, theta, callback=None, stats=None, method="exact"):
    """w_T after T = len(alphas) steps of SGD with momentum, differentiable by autograd.

        v <- gamma_t v - (1 - gamma_t) grad_w loss(w, theta, t);   w <- w + alpha_t v

    loss: scalar autograd function loss(w, theta, t); t selects the minibatch.
    w0: (D,); alphas, gammas: (T,) or (T, D); theta: array the loss depends on.
    callback(w, v, g, t) is called before each step with floats w_t, v_t and the gradient.
    stats: a dict to receive "buffer_bytes" and "bound_bytes" (information bound).
    method: "exact" (reversible fixed point, default) or "stored" (keeps the float64
    trajectory; the naive reverse mode, for comparison).
    The VJP w.r.t. w0, alphas, gammas and theta runs training backwards (Algorithm 2).
    """
    if method not in PATHS:
        raise ValueError(f"method must be one of {sorted(PATHS)}, got {method!r}.")
    _check_inputs(*[_unbox(x) for x in (w0, alphas, gammas, theta)])
    args = [x if isinstance(x, Box) else np.asarray(x, dtype=np.float64)
            for x in (w0, alphas, gammas, theta)]
    if not any(isinstance(x, Box) for x in args):   # not differentiated: keep no path
        w_T, _ = _forward(loss, *args, callback, stats, method)
        return w_T
    return _sgd_momentum(loss, *args, callback, stats, method)


def _unbox(x):
    while isinstance(x, Box):
        x = x._value
    return x


def sgd_momentum_unrolled(loss, w0, alphas, gammas, theta):
    """The same T steps in plain float64 autograd code: the reference the exact VJP is
    tested against, and the naive reverse mode (autograd keeps every intermediate)."""
    grad_loss = grad(loss)
    w, v = w0, np.zeros(np.shape(w0))
    for t in range(len(alphas)):
        v = gammas[t] * v - (1.0 - gammas[t]) * grad_loss(w, theta, t)
        w = w + alphas[t] * v
    return w
