"""The authors' experiment pieces (Figs. 1 and 10), against hand values and finite differences."""
import numpy as np
import pytest
from autograd import grad

from reproducer.experiments import chaos_point, rosenbrock_surface, toy_training


def test_rosenbrock_surface_by_hand():
    # w = (1, 2): r = 100 (2 - 1)^2 + 0 + 200 = 300, loss = 800 / (1 + e^-0.6)
    assert rosenbrock_surface(np.array([1.0, 2.0])) == pytest.approx(800 / (1 + np.exp(-0.6)))
    grid = np.zeros((2, 3, 4)) + np.array([1.0, 2.0])[:, None, None]
    assert np.allclose(rosenbrock_surface(grid), rosenbrock_surface(np.array([1.0, 2.0])))


def test_toy_meta_gradient_survives_exact_reversal():
    """The authors' Fig. 1 start; the reverse pass must land exactly (it raises otherwise)."""
    T, w0 = 50, np.array([1.4, 3.9])
    hypers = np.concatenate([np.full(T, -4.5), np.full(T, np.log(99.0))])
    d = grad(lambda h: rosenbrock_surface(toy_training(h, w0, surface=rosenbrock_surface)))(hypers)
    assert np.all(np.isfinite(d)) and np.max(np.abs(d)) > 0


def test_chaos_point_slope_matches_finite_difference():
    setting = dict(layer_sizes=(784, 5, 10), n_train=20, batch_size=10, T=6)
    loss, slope = chaos_point(0.0, **setting)
    h = 1e-4
    up, down = chaos_point(h, **setting)[0], chaos_point(-h, **setting)[0]
    assert slope == pytest.approx((up - down) / (2 * h), rel=1e-4)
