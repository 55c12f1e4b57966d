"""The meta-optimization loop on problems whose answer is known."""
import autograd.numpy as anp
import numpy as np
import pytest

from reproducer.meta import meta_optimize


def test_adam_finds_the_minimum_and_records_every_iteration():
    seeds = []
    def objective(h, seed):
        seeds.append(seed)
        return anp.sum((h - np.array([1.0, -2.0])) ** 2)
    h, record = meta_optimize(objective, np.zeros(2), 200, 0.1, seed=10, progress=False)
    assert np.allclose(h, [1.0, -2.0], atol=0.05)
    assert len(record["loss"]) == len(record["grad_norm"]) == len(record["hypers"]) == 200
    assert seeds[:3] == [10, 11, 12]        # a new seed at every meta-iteration
    assert record["loss"][-1] < record["loss"][0] and not record["stopped_early"]


def test_stops_when_the_meta_gradient_grows():
    # SGD with too large a step diverges on a quadratic: the gradient norm grows.
    h, record = meta_optimize(lambda h, s: anp.sum(h ** 2), np.ones(3), 100, 1.1,
                              method="sgd", mass=0.0, stop_when_grad_grows=True,
                              patience=2, progress=False)
    assert record["stopped_early"] and len(record["loss"]) < 10


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        meta_optimize(lambda h, s: anp.sum(h), np.ones(1), 1, 0.1, method="lbfgs")
