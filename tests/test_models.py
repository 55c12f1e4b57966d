"""Models and layouts, checked against hand computations and numerical derivatives."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian
from autograd.test_util import check_grads

from reproducer.models import (authors_init, batch_slice, cross_entropy, error_rate, init_weights,
                               log_softmax, minibatch, mlp_layout, mlp_predict)


def test_layout_names_sizes_and_expansion():
    layout = mlp_layout([4, 3, 2])
    assert layout.names == ["layer1_weights", "layer1_biases", "layer2_weights", "layer2_biases"]
    assert layout.size == 4 * 3 + 3 + 3 * 2 + 2
    w = np.arange(layout.size, dtype=float)
    assert np.array_equal(layout.get(w, "layer1_biases"), [12.0, 13.0, 14.0])
    assert layout.get(w, "layer2_weights").shape == (3, 2)
    per_param = layout.expand([[1.0, 2.0, 3.0, 4.0]] * 5)
    assert per_param.shape == (5, layout.size)
    assert np.array_equal(per_param[0, 12:15], [2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="expected 4 values per row"):
        layout.expand([1.0, 2.0])


def test_layout_get_has_the_derivatives_of_plain_slicing():
    layout = mlp_layout([4, 3, 2])
    w = np.random.RandomState(0).randn(layout.size)

    def f(get):                  # takes one block twice and skips layer1_biases
        def loss(w):
            W1, W2 = get(w, "layer1_weights"), get(w, "layer2_weights")
            b2 = get(w, "layer2_biases")
            return (anp.sum(anp.tanh(anp.dot(anp.tanh(W1), W2) + b2) ** 2)
                    + anp.sum(get(w, "layer1_weights") ** 3))
        return loss

    plain = lambda w, name: anp.reshape(w[layout.slices[name]], layout.shapes[name])
    for derivative in (lambda g: g, grad, hessian):
        np.testing.assert_array_equal(derivative(f(layout.get))(w), derivative(f(plain))(w))
    check_grads(f(layout.get), modes=["rev", "fwd"], order=2)(w)


def test_mlp_matches_a_hand_written_forward_pass():
    layout = mlp_layout([4, 3, 2])
    rs = np.random.RandomState(0)
    w, x = rs.randn(layout.size), rs.randn(5, 4)
    W1, b1 = w[:12].reshape(4, 3), w[12:15]
    W2, b2 = w[15:21].reshape(3, 2), w[21:]
    assert np.allclose(mlp_predict(layout, w, x), np.tanh(x @ W1 + b1) @ W2 + b2)


def test_cross_entropy_by_hand_and_its_gradient():
    logits = np.array([[0.0, np.log(3.0)], [1000.0, 0.0]])     # large logit: stable
    targets = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert cross_entropy(logits, targets) == pytest.approx(np.log(4.0) / 2)
    assert np.allclose(np.exp(log_softmax(logits)).sum(1), 1.0)
    assert error_rate(logits, np.array([1, 0])) == 0.0
    layout = mlp_layout([3, 4, 2])
    rs = np.random.RandomState(1)
    x, y = rs.randn(6, 3), np.eye(2)[rs.randint(0, 2, 6)]
    check_grads(lambda w: cross_entropy(mlp_predict(layout, w, x), y), modes=["rev"])(
        rs.randn(layout.size))


def test_init_weights_scales_per_block_and_is_reproducible():
    layout = mlp_layout([100, 50, 10])
    w = init_weights(layout, [np.log(0.1), np.log(1e-9), np.log(2.0), np.log(1e-9)], seed=3)
    assert np.std(layout.get(w, "layer1_weights")) == pytest.approx(0.1, rel=0.05)
    assert np.std(layout.get(w, "layer2_weights")) == pytest.approx(2.0, rel=0.1)
    assert np.max(np.abs(layout.get(w, "layer1_biases"))) < 1e-8
    assert np.array_equal(w, init_weights(layout, [np.log(0.1), np.log(1e-9), np.log(2.0),
                                                   np.log(1e-9)], seed=3))


def test_minibatches_are_deterministic_and_cover_each_epoch():
    epoch = np.concatenate([minibatch(t, 20, 5, seed=1) for t in range(4)])
    assert sorted(epoch) == list(range(20))
    assert np.array_equal(minibatch(6, 20, 5, seed=1), minibatch(6, 20, 5, seed=1))
    assert not np.array_equal(minibatch(0, 20, 5, seed=1), minibatch(4, 20, 5, seed=1))
    with pytest.raises(ValueError, match="exceeds"):
        minibatch(0, 3, 5)


def test_batch_slice_is_the_authors_batch_list():
    # hypergrad's BatchList(10, 4): [0, 4), [4, 8), [8, 10), then again from the start
    slices = [batch_slice(t, 10, 4) for t in range(5)]
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 10), (0, 4), (4, 8)]
    with pytest.raises(ValueError):
        batch_slice(0, 3, 5)


def test_authors_init_is_the_second_draw():
    draws = np.random.RandomState(3)
    draws.randn(6)                                  # their zero-scaled initial velocity
    assert np.array_equal(authors_init(6, -2.0, 3), np.exp(-2.0) * draws.randn(6))
