"""The meta-optimization loop: gradient descent on hyperparameters, one new seed per step."""
import numpy as np
from autograd import value_and_grad
from autograd.misc import optimizers
from tqdm.auto import tqdm



def hypergrad_adam(grad, x, callback=None, num_iters=100, step_size=0.1,
                   b1=0.1, b2=0.01, eps=1e-4, lam=1e-4):
    """The meta-optimizer the authors called `adam` (HIPS/hypergrad, hypergrad/optimizers.py).

    Not textbook Adam: b1 and b2 are one minus the decays (0.1, 0.01 mean 0.9, 0.99), the
    first moment's weight on the new gradient is b1_i = 1 - (1 - b1) lam^i, so from the second
    iteration on (lam = 1e-4) m is almost exactly the latest gradient (no momentum), while the
    bias correction still divides m by 1 - (1 - b1)^(i+1) (5.3x at i = 1), and eps = 1e-4.
    grad(x, i) -> gradient; callback(x, i, g) sees x before iteration i's update."""
    x = np.array(x, dtype=float)
    m, v = np.zeros(len(x)), np.zeros(len(x))
    for i in range(num_iters):
        b1_i = 1 - (1 - b1) * lam ** i
        g = grad(x, i)
        if callback:
            callback(x, i, g)
        m = b1_i * g + (1 - b1_i) * m
        v = b2 * g ** 2 + (1 - b2) * v
        m_hat = m / (1 - (1 - b1) ** (i + 1))
        v_hat = v / (1 - (1 - b2) ** (i + 1))
        x = x - step_size * m_hat / (np.sqrt(v_hat) + eps)
    return x


def gradient_descent(grad, x, callback=None, num_iters=100, step_size=0.1):
    """Plain gradient descent x <- x - step_size g, with the same calling convention."""
    x = np.array(x, dtype=float)
    for i in range(num_iters):
        g = grad(x, i)
        if callback:
            callback(x, i, g)
        x = x - step_size * g
    return x


OPTIMIZERS = {"adam": optimizers.adam, "sgd": optimizers.sgd,
              "hypergrad_adam": hypergrad_adam, "gradient_descent": gradient_descent}


class _Stop(Exception):
    def __init__(self, hypers):
        self.hypers = hypers


def meta_optimize(objective, hypers0, num_iters, step_size, method="adam", seed=0,
                  stop_when_grad_grows=False, patience=3, progress=True, **optimizer_kwargs):
    """Minimize objective(hypers, seed) by hypergradient descent.

    objective: scalar autograd function of a 1-D hyperparameter array and an integer seed;
    meta-iteration i calls it with seed + i (new initialization and minibatches each time).
    method: "adam" or "sgd" (autograd.misc.optimizers; extra keywords go to it, e.g. mass),
    "hypergrad_adam" (the authors' meta-optimizer, see hypergrad_adam) or "gradient_descent".
    stop_when_grad_grows: stop once the meta-gradient norm has stayed above its smallest
    value so far for `patience` iterations in a row (the paper stopped such runs by hand).
    Returns (hypers, record): the final hyperparameters and a dict of lists, one entry per
    meta-iteration: "loss", "grad_norm", "grad_cosine" (cosine between this meta-gradient and
    the previous one; nan at the first), "hypers" (values before that iteration's update),
    plus "stopped_early" (bool).
    """
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}.")
    value_and_gradient = value_and_grad(objective)
    record = {"loss": [], "grad_norm": [], "grad_cosine": [], "hypers": [], "stopped_early": False}
    previous = {}
    bar = tqdm(total=num_iters, desc="meta-iterations", disable=not progress)

    def gradient(hypers, i):
        loss, g = value_and_gradient(hypers, seed + i)
        record["loss"].append(float(loss))
        record["grad_norm"].append(float(np.linalg.norm(g)))
        last = previous.get("g")
        record["grad_cosine"].append(np.nan if last is None else float(
            np.dot(last, g) / (np.linalg.norm(last) * np.linalg.norm(g))))
        previous["g"] = np.array(g, dtype=float)
        record["hypers"].append(np.array(hypers, dtype=float))
        return g

    def callback(hypers, i, g):
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss'][-1]:.4g}")
        norms = record["grad_norm"]
        if stop_when_grad_grows and len(norms) > patience and \
                min(norms[-patience:]) > min(norms[:-patience]):
            raise _Stop(hypers)

    try:
        hypers = OPTIMIZERS[method](gradient, np.array(hypers0, dtype=float), callback,
                                    num_iters=num_iters, step_size=step_size, **optimizer_kwargs)
    except _Stop as stop:
        hypers, record["stopped_early"] = stop.hypers, True
    finally:
        bar.close()
    return np.array(hypers), record
