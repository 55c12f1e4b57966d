"""Reversible Adam and RMSprop against plain autograd through the unrolled float64 loop."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from autograd.test_util import check_grads
from hypothesis import given, settings, strategies as st

from reproducer import ExactArithmeticError, ReversalError, exact
from reproducer.adaptive import FloatingMoment, adam, rmsprop
from reproducer.sgd import Schedule
from reproducer.models import cross_entropy, init_weights, minibatch, mlp_layout, mlp_predict

RS = np.random.RandomState(0)
INPUTS, LABELS = RS.randn(60, 6), np.eye(3)[RS.randint(0, 3, 60)]
LAYOUT = mlp_layout([6, 8, 8, 3])


def mlp_loss(w, theta, t):
    idx = minibatch(t, 60, 15)
    return (cross_entropy(mlp_predict(LAYOUT, w, INPUTS[idx]), LABELS[idx])
            + anp.exp(theta[0]) * anp.sum(w ** 2))


def validation(w):
    return cross_entropy(mlp_predict(LAYOUT, w, INPUTS[:30]), LABELS[:30])


def adam_unrolled(loss, w0, alphas, beta1s, beta2s, eps, theta):
    """Adam as in Kingma & Ba, written out plainly (the independent reference)."""
    g_loss = grad(loss)
    w, m, s = w0, np.zeros(len(w0)), np.zeros(len(w0))
    prod1, prod2 = 1.0, 1.0
    for t in range(len(alphas)):
        g = g_loss(w, theta, t)
        m = beta1s[t] * m + (1 - beta1s[t]) * g
        s = beta2s[t] * s + (1 - beta2s[t]) * g ** 2
        prod1, prod2 = prod1 * beta1s[t], prod2 * beta2s[t]
        w = w - alphas[t] * (m / (1 - prod1)) / (anp.sqrt(s / (1 - prod2)) + eps)
    return w


def rmsprop_unrolled(loss, w0, alphas, gammas, rhos, eps, theta):
    g_loss = grad(loss)
    w, v, s = w0, np.zeros(len(w0)), np.zeros(len(w0))
    for t in range(len(alphas)):
        g = g_loss(w, theta, t)
        s = rhos[t] * s + (1 - rhos[t]) * g ** 2
        v = gammas[t] * v - (1 - gammas[t]) * g / (anp.sqrt(s) + eps)
        w = w + alphas[t] * v
    return w


def problem(T, per_parameter=False, seed=1):
    rs = np.random.RandomState(seed)
    shape = (T, LAYOUT.size) if per_parameter else (T,)
    w0 = init_weights(LAYOUT, np.full(len(LAYOUT), -1.0), seed)
    return (w0, rs.uniform(0.005, 0.03, shape), rs.uniform(0.5, 0.95, shape),
            rs.uniform(0.9, 0.999, shape), 1e-3, np.array([-5.0]))


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("per_parameter", [False, True])
@pytest.mark.parametrize("ours, reference", [(adam, adam_unrolled), (rmsprop, rmsprop_unrolled)])
def test_hypergradients_match_the_unrolled_loop(ours, reference, per_parameter):
    args = problem(60, per_parameter)
    argnums = [0, 1, 2, 3, 4, 5]
    ours_g = grad(lambda *a: validation(ours(mlp_loss, *a)), argnum=argnums)(*args)
    ref_g = grad(lambda *a: validation(reference(mlp_loss, *a)), argnum=argnums)(*args)
    names = ["w0", "alphas", "decay 1", "decay 2", "eps", "theta"]
    for name, a, b in zip(names, ours_g, ref_g):
        assert np.shape(a) == np.shape(b), name
        assert np.max(np.abs(b)) > 0, name
        assert relative_error(a, b) <= 1e-6, name


def test_per_block_schedules_and_forward_values():
    rs = np.random.RandomState(2)
    T, K = 30, len(LAYOUT)
    w0, _, _, _, eps, theta = problem(T)
    alphas, b1, b2 = rs.uniform(0.005, 0.03, (T, K)), rs.uniform(0.5, 0.95, (T, K)), \
        rs.uniform(0.9, 0.999, (T, K))
    stats = {}
    w_T = adam(mlp_loss, w0, alphas, b1, b2, eps, theta, blocks=LAYOUT, stats=stats)
    expand = LAYOUT.expand
    assert np.allclose(w_T, adam_unrolled(mlp_loss, w0, expand(alphas), expand(b1), expand(b2),
                                          eps, theta), rtol=0, atol=1e-7)
    bound = np.sum(-np.log2(expand(b1)) - np.log2(expand(b2))) / 8
    assert stats["bound_bytes"] == pytest.approx(bound, rel=1e-6)
    assert stats["buffer_bytes"] <= 1.10 * bound + 2 * 32 * LAYOUT.size
    ours = grad(lambda a: validation(adam(mlp_loss, w0, a, b1, b2, eps, theta, blocks=LAYOUT)))(alphas)
    ref = grad(lambda a: validation(adam_unrolled(mlp_loss, w0, expand(a), expand(b1),
                                                  expand(b2), eps, theta)))(alphas)
    assert ours.shape == (T, K) and relative_error(ours, ref) <= 1e-6


def test_check_grads_on_a_tiny_problem():
    def loss(w, theta, t):
        return anp.sum((w - theta) ** 2 * (1.0 + 0.1 * t)) + anp.sum(anp.sin(w))
    def f(w0, log_alphas, b1, theta):
        return anp.sum(anp.cos(adam(loss, w0, anp.exp(log_alphas), b1, 0.99 * np.ones(6),
                                    1e-2, theta)))
    rs = np.random.RandomState(3)
    check_grads(f, modes=["rev"], order=1)(rs.randn(3), np.log(rs.uniform(0.01, 0.05, 6)),
                                         rs.uniform(0.6, 0.9, 6), rs.randn(3))


def test_buffer_meets_the_bound_over_many_steps():
    """log2(1/b1) + log2(1/b2) bits per parameter and step, within 1.10x plus overhead."""
    D, T = 200, 2000
    def loss(w, theta, t):
        return anp.sum(anp.sin(w + 0.01 * t) * theta)
    stats = {}
    theta = np.random.RandomState(4).randn(D)
    adam(loss, np.zeros(D), np.full(T, 1e-3), np.full(T, 0.9), np.full(T, 0.999), 1e-8, theta,
         stats=stats)
    assert stats["buffer_bytes"] <= 1.10 * stats["bound_bytes"] + 2 * 32 * D


@pytest.mark.parametrize("bad, message", [
    (dict(beta1s=[0.9, 1.5, 0.9]), r"step 1 is not a decay in \(0, 1\]"),
    (dict(beta1s=[1.0, 0.9, 0.9]), r"beta1s at step 0 must be below 1"),
    (dict(eps=0.0), r"eps must be one positive finite number"),
    (dict(beta2s=[0.9, 0.9]), r"beta2s has 2 steps but alphas has 3"),
])
def test_bad_inputs_are_refused(bad, message):
    args = dict(w0=np.ones(4), alphas=[0.1] * 3, beta1s=[0.9] * 3, beta2s=[0.99] * 3,
                eps=1e-8, theta=np.zeros(1))
    args.update(bad)
    with pytest.raises((ValueError, ExactArithmeticError), match=message):
        adam(lambda w, th, t: anp.sum(w ** 2), **args)


def test_a_loss_that_changes_between_passes_is_caught():
    calls = []
    def loss(w, theta, t):
        calls.append(t)
        return anp.sum(w ** 2) * (1.0 + 0.01 * len(calls))
    with pytest.raises(ReversalError):
        grad(lambda w0: anp.sum(rmsprop(loss, w0, [0.1] * 5, [0.9] * 5, [0.9] * 5, 1e-8,
                                        np.zeros(1))))(np.ones(4))


def test_library_unrolled_versions_agree_with_the_independent_references():
    from reproducer.adaptive import adam_unrolled as lib_adam, rmsprop_unrolled as lib_rmsprop
    args = problem(20, per_parameter=True)
    assert np.allclose(lib_adam(mlp_loss, *args), adam_unrolled(mlp_loss, *args), atol=1e-12)
    assert np.allclose(lib_rmsprop(mlp_loss, *args), rmsprop_unrolled(mlp_loss, *args), atol=1e-12)


def test_weights_with_always_zero_gradient_get_finite_hypergradients():
    """Pixels that are always 0 give s = m = 0; sqrt(s) must not turn that into NaN."""
    def loss(w, theta, t):
        return anp.sum((w[:2] - theta) ** 2)          # w[2:] never gets a gradient
    d = grad(lambda a: anp.sum(adam(loss, np.ones(4), a, 0.9 * np.ones(5), 0.99 * np.ones(5),
                                    1e-8, np.zeros(2)) ** 2))(0.01 * np.ones(5))
    assert np.all(np.isfinite(d)) and np.any(d != 0)


# --- any gradient scale: floating-point moments ----------------------------------------

def representable(decays):
    """Decays rounded to n / 2**32, as exact arithmetic applies them: the reference loop then
    runs the very same optimizer (test_sgd covers the error of the rounding itself)."""
    return exact.represented_gammas(exact.gamma_numerators(decays))


def drifting_problem(rs, first_scale, last_scale, T=25, D=4):
    """A loss whose gradients run from 10**first_scale to 10**last_scale over T steps, the
    parameters' own scales differing by up to 100x; decays exactly representable."""
    spread = 10.0 ** rs.uniform(-2, 0, D)
    target = rs.randn(D)
    def loss(w, theta, t):
        scale = 10.0 ** (first_scale + (last_scale - first_scale) * t / (T - 1))
        return scale * anp.sum(spread * (theta[0] * (w - target) ** 2 + anp.sin(3 * w)))
    return loss, (rs.randn(D), rs.uniform(0.01, 0.05, T), representable(rs.uniform(0.5, 0.95, T)),
                  representable(rs.uniform(0.9, 0.999, T)))


@settings(max_examples=12, deadline=None)
@given(first=st.floats(-12, 3), last=st.floats(-12, 3), log_eps=st.floats(-12, -3),
       seed=st.integers(0, 2 ** 16))
@pytest.mark.parametrize("ours, reference", [(adam, adam_unrolled), (rmsprop, rmsprop_unrolled)])
def test_gradients_of_any_scale_match_the_unrolled_loop(ours, reference, first, last, log_eps,
                                                        seed):
    """Gradients anywhere in [1e-12, 1e3], drifting by up to 15 decades within one run,
    eps down to 1e-12: weights and every hypergradient within 1e-6 of float64 autograd
    (errors seen: below 1e-10)."""
    loss, (w0, alphas, decay_a, decay_b) = drifting_problem(np.random.RandomState(seed),
                                                            first, last)
    args = (w0, alphas, decay_a, decay_b, 10.0 ** log_eps, np.array([1.0]))
    assert relative_error(ours(loss, *args), reference(loss, *args)) <= 1e-6
    meta = lambda w: anp.sum(anp.sin(w))
    argnums = [0, 1, 2, 3, 4, 5]
    ours_g = grad(lambda *a: meta(ours(loss, *a)), argnum=argnums)(*args)
    ref_g = grad(lambda *a: meta(reference(loss, *a)), argnum=argnums)(*args)
    for name, a, b in zip(["w0", "alphas", "decay 1", "decay 2", "eps", "theta"], ours_g, ref_g):
        assert relative_error(a, b) <= 1e-6, name


def test_the_issue_example_small_gradients():
    """|g| = 5e-8: the second moment used to round to zero, the step became m / eps."""
    T = 10
    loss = lambda w, th, t: 5e-8 * anp.sum(w)
    args = (np.zeros(3), .01 * np.ones(T), .9 * np.ones(T), .999 * np.ones(T), 1e-8, np.zeros(1))
    assert relative_error(adam(loss, *args), adam_unrolled(loss, *args)) <= 1e-9


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2 ** 31))
def test_floating_moment_round_trip_is_bit_exact(seed):
    """Increments jumping over 40 decades, zeros, and sign changes: every exponent change
    is undone, every intermediate state comes back bit for bit, nothing is left over."""
    rs = np.random.RandomState(seed)
    D, T = 7, 60
    decays = Schedule(rs.uniform(0.5, 1.0, (T, D)), [D])
    moment = FloatingMoment(D, decays, "the moment m")
    deltas = rs.randn(T, D) * 10.0 ** rs.randint(-30, 10, (T, D)) * (rs.rand(T, D) < 0.8)
    history = []
    for t in range(T):
        history.append((moment.x.copy(), moment.e.copy()))
        moment.decay(t)
        moment.add(deltas[t], t)
    assert moment.log, "the test should exercise changes of exponent"
    for t in reversed(range(T)):
        moment.subtract(deltas[t], t)
        moment.undecay(t)
        assert np.array_equal(moment.x, history[t][0]) and np.array_equal(moment.e, history[t][1])
    assert moment.is_empty() and not moment.x.any()


def test_squared_gradients_beyond_float64_are_refused_naming_the_moment():
    loss = lambda w, th, t: 1e200 * anp.sum(w)
    with pytest.raises(ExactArithmeticError, match=r"moment s at step 0.*Scale the loss down"):
        adam(loss, np.zeros(2), [0.1] * 3, [0.9] * 3, [0.99] * 3, 1e-8, np.zeros(1))
