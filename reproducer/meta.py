"""The meta-optimization loop: gradient descent on hyperparameters, one new seed per step."""
import numpy as np
from autograd import value_and_grad
from autograd.misc import optimizers
from tqdm.auto import tqdm

OPTIMIZERS = {"adam": optimizers.adam, "sgd": optimizers.sgd}


class _Stop(Exception):
    def __init__(self, hypers):
        self.hypers = hypers


def meta_optimize(objective, hypers0, num_iters, step_size, method="adam", seed=0,
                  stop_when_grad_grows=False, patience=3, progress=True, **optimizer_kwargs):
    """Minimize objective(hypers, seed) by hypergradient descent.

    objective: scalar autograd function of a 1-D hyperparameter array and an integer seed;
    meta-iteration i calls it with seed + i (new initialization and minibatches each time).
    method: "adam" or "sgd" (autograd.misc.optimizers; extra keywords go to it, e.g. mass).
    stop_when_grad_grows: stop once the meta-gradient norm has stayed above its smallest
    value so far for `patience` iterations in a row (the paper stopped such runs by hand).
    Returns (hypers, record): the final hyperparameters and a dict of lists, one entry per
    meta-iteration: "loss", "grad_norm", "hypers" (values before that iteration's update),
    plus "stopped_early" (bool).
    """
    if method not in OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(OPTIMIZERS)}, got {method!r}.")
    value_and_gradient = value_and_grad(objective)
    record = {"loss": [], "grad_norm": [], "hypers": [], "stopped_early": False}
    bar = tqdm(total=num_iters, desc="meta-iterations", disable=not progress)

    def gradient(hypers, i):
        loss, g = value_and_gradient(hypers, seed + i)
        record["loss"].append(float(loss))
        record["grad_norm"].append(float(np.linalg.norm(g)))
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
