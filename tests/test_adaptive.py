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


def safe_sqrt(s):
    """sqrt with derivative 0 at s = 0 (the double-where idiom): s = 0 means no gradient so
    far, where m = 0 too and the step does not depend on s (plain anp.sqrt gives 0 * inf)."""
    positive = s > 0
    return anp.where(positive, anp.sqrt(anp.where(positive, s, 1.0)), 0.0)


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
        w = w - alphas[t] * (m / (1 - prod1)) / (safe_sqrt(s / (1 - prod2)) + eps)
    return w


def rmsprop_unrolled(loss, w0, alphas, gammas, rhos, eps, theta):
    g_loss = grad(loss)
    w, v, s = w0, np.zeros(len(w0)), np.zeros(len(w0))
    for t in range(len(alphas)):
        g = g_loss(w, theta, t)
        s = rhos[t] * s + (1 - rhos[t]) * g ** 2
        v = gammas[t] * v - (1 - gammas[t]) * g / (safe_sqrt(s) + eps)
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


# --- gradients that are exactly zero at some steps (issue 18 item 1) -------------------

def test_a_parameter_whose_first_gradient_is_zero_still_learns():
    """The issue's example: parameter 1 has no gradient at step 0. Its exponent used to stay
    unset, every later increment rounded to 0 and it froze at 0 (the unrolled loop: 1.0002);
    RMSprop's s froze at 0 instead, its step became g / eps and it reported "diverged"."""
    loss = lambda w, th, t: anp.sum(np.array([1., 0. if t == 0 else 1.]) * (w - 1.0) ** 2)
    args = (0.05 * np.ones(50), representable(0.5 * np.ones(50)),
            representable(0.75 * np.ones(50)), 1e-8, np.zeros(0))
    for ours, reference in [(adam, adam_unrolled), (rmsprop, rmsprop_unrolled)]:
        expected = reference(loss, np.zeros(2), *args)
        assert abs(expected[1] - 1.0) < 0.01           # it does learn, in float64
        assert relative_error(ours(loss, np.zeros(2), *args), expected) <= 1e-9


@pytest.mark.parametrize("ours, reference", [(adam, adam_unrolled), (rmsprop, rmsprop_unrolled)])
def test_moments_decaying_after_the_gradient_stops_keep_their_precision(ours, reference):
    """Gradient for 5 steps, then exactly 0 for 55: the moments only decay. With
    beta1 = 0.9 > sqrt(beta2) = 0.71 the step m / sqrt(s) keeps growing, and s, decaying
    as an integer count of a never-refined unit, lost its bits: Adam's weights ended 2.9x
    the float64 ones. Weights and hypergradients within 1e-6 (measured: Adam 2e-12 and
    2e-10; RMSprop 7e-13 and 5e-8, the latter in d theta, which nearly cancels, 6.6e-12,
    because RMSprop's step does not change with the loss's scale). RMSprop passed before
    too: its step is v itself, whose loss of bits while it decays to nothing was harmless."""
    T = 60
    loss = lambda w, th, t: (1.0 if t < 5 else 0.0) * anp.sum(th[0] * (w - 1.0) ** 2)
    args = (np.zeros(2), 1e-4 * np.ones(T), representable(0.9 * np.ones(T)),
            representable(0.5 * np.ones(T)), 1e-8, np.array([1.0]))
    assert relative_error(ours(loss, *args), reference(loss, *args)) <= 1e-6
    meta = lambda w: anp.sum(anp.sin(w))
    argnums = [0, 1, 2, 3, 4, 5]
    ours_g = grad(lambda *a: meta(ours(loss, *a)), argnum=argnums)(*args)
    ref_g = grad(lambda *a: meta(reference(loss, *a)), argnum=argnums)(*args)
    for name, a, b in zip(["w0", "alphas", "decay 1", "decay 2", "eps", "theta"], ours_g, ref_g):
        assert np.all(np.isfinite(b)) and np.max(np.abs(b)) > 0, name
        assert relative_error(a, b) <= 1e-6, name


def sparse_problem(rs, T, D):
    """A loss whose gradient is exactly zero at random (step, parameter) pairs: some
    parameters start late, some stop early, some flicker, one never gets any; per-parameter
    decays, beta2 (rho) down to 0.5 so that beta1 > sqrt(beta2) happens."""
    mask = (rs.rand(T, D) < rs.uniform(0.3, 0.9)).astype(float)
    start, stop = rs.randint(0, T // 2, D), rs.randint(T // 2, T + 1, D)
    steps = np.arange(T)[:, None]
    mask *= (steps >= start) & (steps < stop)
    mask[0, rs.randint(D)] = 0.0                       # at least one late starter
    mask[:, rs.randint(D)] = 0.0                       # and one without any gradient
    mask[rs.randint(T), rs.randint(D)] = 1.0           # but some gradient somewhere
    spread = 10.0 ** rs.uniform(-2, 1, D)
    target = rs.randn(D)
    def loss(w, theta, t):
        return anp.sum(mask[t] * spread * (theta[0] * (w - target) ** 2 + anp.sin(3 * w)))
    return loss, (rs.randn(D), rs.uniform(0.005, 0.05, (T, D)),
                  representable(rs.uniform(0.5, 0.95, (T, D))),
                  representable(rs.uniform(0.5, 0.999, (T, D))))


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2 ** 16), log_eps=st.floats(-10, -3))
@pytest.mark.parametrize("ours, reference", [(adam, adam_unrolled), (rmsprop, rmsprop_unrolled)])
def test_sparse_and_intermittent_gradients_match_the_unrolled_loop(ours, reference, seed,
                                                                  log_eps):
    """Weights and every hypergradient within 1e-6 of autograd through the float64 loop fed
    the same represented decays (errors seen over 12 seeds: weights below 1e-14,
    hypergradients below 3e-12; before the fix, weights up to 0.59 off)."""
    T, D = 24, 6
    loss, (w0, alphas, decay_a, decay_b) = sparse_problem(np.random.RandomState(seed), T, D)
    args = (w0, alphas, decay_a, decay_b, 10.0 ** log_eps, np.array([1.0]))
    assert relative_error(ours(loss, *args), reference(loss, *args)) <= 1e-6
    meta = lambda w: anp.sum(anp.sin(w))
    argnums = [0, 1, 2, 3, 4, 5]
    ours_g = grad(lambda *a: meta(ours(loss, *a)), argnum=argnums)(*args)
    ref_g = grad(lambda *a: meta(reference(loss, *a)), argnum=argnums)(*args)
    for name, a, b in zip(["w0", "alphas", "decay 1", "decay 2", "eps", "theta"], ours_g, ref_g):
        assert np.all(np.isfinite(b)), name
        assert relative_error(a, b) <= 1e-6, name


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2 ** 31))
def test_round_trip_with_late_starts_and_decay_only_tails_is_bit_exact(seed):
    """Increments that start late and stop early, with decays down to 0.3: the exponents set
    late and refined while a value only decays are all restored bit for bit."""
    rs = np.random.RandomState(seed)
    D, T = 6, 80
    decays = Schedule(rs.uniform(0.3, 1.0, (T, D)), [D])
    moment = FloatingMoment(D, decays, "the moment s")
    steps = np.arange(T)[:, None]
    live = (steps >= rs.randint(0, T // 2, D)) & (steps < rs.randint(T // 4, T, D))
    deltas = rs.randn(T, D) * 10.0 ** rs.randint(-20, 5, (T, D)) * live
    history = []
    for t in range(T):
        history.append((moment.x.copy(), moment.e.copy()))
        moment.decay(t)
        moment.add(deltas[t], t)
    for t in reversed(range(T)):
        moment.subtract(deltas[t], t)
        moment.undecay(t)
        assert np.array_equal(moment.x, history[t][0]) and np.array_equal(moment.e, history[t][1])
    assert moment.is_empty() and not moment.x.any()


def test_a_refined_exponent_keeps_the_value_to_36_bits_while_it_only_decays():
    """x * 2**e of a moment decaying by 0.5 for 200 steps with no increment: float64 halves
    exactly, so the value must stay equal to it (to 2**-36); before, x ran down to 0 after
    ~48 steps. The log of these refinements costs 6 bytes each (index and old exponent)."""
    T = 200
    moment = FloatingMoment(1, Schedule(np.full(T, 0.5), [1]), "the moment s")
    moment.add(np.array([3.0]), 0)
    for t in range(1, T):
        moment.decay(t)
        value = moment.add(np.zeros(1), t)
        assert abs(value[0] - 3.0 * 0.5 ** t) <= 2.0 ** -36 * 3.0 * 0.5 ** t
    refinements = len(moment.log)
    assert 200 // 13 <= refinements <= 200 // 11
    assert moment.nbytes - super(FloatingMoment, moment).nbytes - moment.e.nbytes \
        == refinements * 6
