"""The meta-optimization loop on problems whose answer is known."""
import autograd.numpy as anp
import numpy as np
import pytest

from reproducer.meta import meta_optimize, hypergrad_adam, gradient_descent


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


def test_hypergrad_adam_matches_a_transcription_of_the_authors_update_rule():
    # Transcribed independently from HIPS/hypergrad's optimizers.adam (b1, b2 are 1 - decay).
    target = np.array([3.0, -1.0, 0.5])
    grad = lambda x, i: 2 * (x - target) * (1 + 0.1 * i)
    x, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    step, b1, b2, eps, lam = 0.04, 0.1, 0.01, 1e-4, 1e-4
    for i in range(30):
        g = grad(x, i)
        b1t = 1 - (1 - b1) * (lam ** i)
        m = b1t * g + (1 - b1t) * m
        v = b2 * (g ** 2) + (1 - b2) * v
        x = x - step * (m / (1 - (1 - b1) ** (i + 1))) / (np.sqrt(v / (1 - (1 - b2) ** (i + 1))) + eps)
    seen = []
    ours = hypergrad_adam(grad, np.zeros(3), lambda x, i, g: seen.append(i), 30, step)
    np.testing.assert_array_equal(ours, x)
    assert seen == list(range(30))
    # it is not textbook Adam: from the second step m is (almost) the latest gradient
    textbook = meta_optimize(lambda h, s: anp.sum((h - target) ** 2), np.zeros(3), 30, step,
                             progress=False)[0]
    assert not np.allclose(ours, textbook)


def test_gradient_descent_is_plain_descent_and_runs_through_meta_optimize():
    assert np.allclose(gradient_descent(lambda x, i: 2 * x, np.ones(2), None, 3, 0.25), 0.125)
    h, record = meta_optimize(lambda h, s: anp.sum((h - 1.0) ** 2), np.zeros(2), 3, 0.25,
                              method="gradient_descent", progress=False)
    assert np.allclose(h, 0.875) and len(record["loss"]) == 3
    h2, _ = meta_optimize(lambda h, s: anp.sum((h - 1.0) ** 2), np.zeros(2), 40, 0.1,
                          method="hypergrad_adam", progress=False)
    assert np.allclose(h2, 1.0, atol=0.05)


def test_grad_cosine_compares_consecutive_meta_gradients():
    # Gradient descent on sum(x^2) with step 0.1: g_{i+1} = 0.8 g_i, cosine exactly 1;
    # on x0 . h (a linear function) with x0 = [1, -1] it stays 1 too; a sign flip gives -1.
    _, record = meta_optimize(lambda h, s: anp.sum(h ** 2), np.array([1.0, -2.0]), 4, 0.1,
                              method="gradient_descent", progress=False)
    assert np.isnan(record["grad_cosine"][0])
    assert np.allclose(record["grad_cosine"][1:], 1.0)
    _, record = meta_optimize(lambda h, s: anp.sum(h ** 2), np.array([1.0, -2.0]), 3, 1.0,
                              method="gradient_descent", progress=False)
    assert np.allclose(record["grad_cosine"][1:], -1.0)     # step 1 flips h to -h
