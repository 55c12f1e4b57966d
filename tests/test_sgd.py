"""sgd_momentum: exact reversal, hypergradients against an independent float64 reference,
and clear errors for bad input."""
import re
import warnings
from pathlib import Path

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, hessian, make_vjp
from autograd.test_util import check_grads

from reproducer import exact
from reproducer import ExactArithmeticError, FixedPointRangeError, ReversalError, sgd_momentum
from reproducer.adaptive import adam, rmsprop
from reproducer.models import cross_entropy, init_weights, minibatch, mlp_layout, mlp_predict
from reproducer.sgd import ExactPath, Schedule, sgd_momentum_unrolled

RS = np.random.RandomState(0)
INPUTS, LABELS = RS.randn(60, 6), np.eye(3)[RS.randint(0, 3, 60)]
LAYOUT = mlp_layout([6, 8, 8, 3])


def mlp_loss(w, theta, t):
    """Minibatch cross-entropy of a small tanh MLP plus an L2 penalty exp(theta[0])."""
    idx = minibatch(t, 60, 15)
    logits = mlp_predict(LAYOUT, w, INPUTS[idx])
    return cross_entropy(logits, LABELS[idx]) + anp.exp(theta[0]) * anp.sum(w ** 2)


def validation(w):
    return cross_entropy(mlp_predict(LAYOUT, w, INPUTS[:30]), LABELS[:30])


def problem(T=100, per_parameter=False, seed=1):
    rs = np.random.RandomState(seed)
    shape = (T, LAYOUT.size) if per_parameter else (T,)
    w0 = init_weights(LAYOUT, np.full(len(LAYOUT), -1.0), seed)
    return w0, rs.uniform(0.2, 1.0, shape), rs.uniform(0.5, 0.99, shape), np.array([-5.0])


def hypergradients(train, w0, alphas, gammas, theta):
    f = lambda *args: validation(train(mlp_loss, *args))
    return grad(f, argnum=[0, 1, 2, 3])(w0, alphas, gammas, theta)


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("per_parameter", [False, True])
def test_hypergradients_match_autograd_through_the_unrolled_loop(per_parameter):
    args = problem(per_parameter=per_parameter)
    ours = hypergradients(sgd_momentum, *args)
    reference = hypergradients(sgd_momentum_unrolled, *args)
    for name, a, b in zip(["w0", "alphas", "gammas", "theta"], ours, reference):
        assert a.shape == b.shape, name
        assert relative_error(a, b) <= 1e-6, name
        assert np.max(np.abs(b)) > 0, name     # a zero reference would prove nothing


def test_per_block_schedules_match_the_expanded_unrolled_loop():
    """(T, K) schedules with blocks=layout: one step size and decay per layer and step."""
    rs = np.random.RandomState(4)
    T, K = 40, len(LAYOUT)
    w0, _, _, theta = problem(T)
    alphas, gammas = rs.uniform(0.2, 1.0, (T, K)), rs.uniform(0.5, 0.99, (T, K))
    ours = grad(lambda a, g: validation(sgd_momentum(mlp_loss, w0, a, g, theta, blocks=LAYOUT)),
                argnum=[0, 1])(alphas, gammas)
    reference = grad(lambda a, g: validation(sgd_momentum_unrolled(
        mlp_loss, w0, LAYOUT.expand(a), LAYOUT.expand(g), theta)), argnum=[0, 1])(alphas, gammas)
    for a, b in zip(ours, reference):
        assert a.shape == (T, K) and relative_error(a, b) <= 1e-6


@pytest.mark.parametrize("method", ["stored", "checkpoint"])
def test_storing_methods_give_the_same_hypergradients(method):
    args = problem(T=30)
    for a, b in zip(hypergradients(lambda *a: sgd_momentum(*a, method=method), *args),
                    hypergradients(sgd_momentum_unrolled, *args)):
        assert relative_error(a, b) <= 1e-12


def test_check_grads_on_a_tiny_problem():
    def loss(w, theta, t):
        return anp.sum((w - theta) ** 2 * (1.0 + 0.1 * t)) + anp.sum(anp.sin(w))
    def f(w0, log_alphas, gamma_logits, theta):
        gammas = 1.0 / (1.0 + anp.exp(-gamma_logits))
        return anp.sum(anp.cos(sgd_momentum(loss, w0, anp.exp(log_alphas), gammas, theta)))
    rs = np.random.RandomState(2)
    check_grads(f, modes=["rev"], order=1)(rs.randn(3), np.log(rs.uniform(0.05, 0.2, 5)),
                                         rs.randn(5), rs.randn(3))


def test_composes_with_hyperparameter_transforms_and_second_backward_pass():
    """The user's pattern from the README, and jacobian needing two reverse passes."""
    from autograd import jacobian
    w0, alphas, gammas, theta = problem(T=20)
    def trained(h):
        return sgd_momentum(mlp_loss, w0 * anp.exp(h[0]), anp.exp(h[1]) * alphas,
                            1.0 / (1.0 + anp.exp(-h[2])) * anp.ones(20), theta)
    h = np.array([0.0, 0.0, 1.0])
    jac = jacobian(lambda h: trained(h)[:2])(h)
    def trained_unrolled(h):
        return sgd_momentum_unrolled(mlp_loss, w0 * anp.exp(h[0]), anp.exp(h[1]) * alphas,
                                     1.0 / (1.0 + anp.exp(-h[2])) * anp.ones(20), theta)
    assert relative_error(jac, jacobian(lambda h: trained_unrolled(h)[:2])(h)) <= 1e-6


def test_ten_thousand_steps_return_bit_exactly_where_floats_do_not():
    rs = np.random.RandomState(3)
    T, D = 10000, 20
    w0, alphas, gammas = rs.randn(D), rs.uniform(0.01, 0.1, T), rs.uniform(0.5, 0.99, T)
    grads = [rs.randn(D) for _ in range(T)]

    path = ExactPath(w0, Schedule(alphas, [D]), Schedule(gammas, [D]))
    for t in range(T):
        path.step(t, grads[t])
    assert path.v.x.any() and not np.array_equal(path.w.x, path.w0)
    for t in reversed(range(T)):
        path.undo_position(t, path.v.value())
        path.undo_velocity(t, grads[t])
    path.check_returned()                 # raises unless w, v and the buffer are back
    assert np.array_equal(path.w.x, path.w0) and not path.v.x.any()

    # The same steps and their inverses in plain float64 do not come back.
    gammas = path.gammas.values
    w, v = w0.copy(), np.zeros(D)
    for t in range(T):
        v = gammas[t] * v - (1 - gammas[t]) * grads[t]
        w = w + alphas[t] * v
    with np.errstate(over="ignore", invalid="ignore"):
        for t in reversed(range(T)):
            w = w - alphas[t] * v
            v = (v + (1 - gammas[t]) * grads[t]) / gammas[t]
        assert not np.all(np.abs(w - w0) < 1e-3)


def test_callback_and_stats():
    w0, alphas, gammas, theta = problem(T=25)
    seen, stats = [], {}
    w_T = sgd_momentum(mlp_loss, w0, alphas, gammas, theta,
                       callback=lambda w, v, g, t: seen.append((t, w.copy())), stats=stats)
    assert [t for t, _ in seen] == list(range(25))
    assert np.array_equal(seen[0][1], w0) or np.allclose(seen[0][1], w0, atol=1e-15)
    assert stats["bound_bytes"] == pytest.approx(
        -np.log2(gammas).sum() * LAYOUT.size / 8, rel=1e-6)
    assert 0 < stats["buffer_bytes"] <= 1.10 * stats["bound_bytes"] + 32 * LAYOUT.size
    assert np.allclose(w_T, sgd_momentum_unrolled(mlp_loss, w0, alphas, gammas, theta),
                       rtol=0, atol=1e-7)


def quadratic(w, theta, t):
    return anp.sum(w ** 2)


@pytest.mark.parametrize("bad, message", [
    (dict(gammas=[0.9, 0.9, 1.2]), r"step 2 is not a decay in \(0, 1\]"),
    (dict(gammas=[0.9, np.nan, 0.9]), r"step 1 is not a decay"),
    (dict(alphas=[0.1, np.inf, 0.1]), r"alphas at step 1 is not finite"),
    (dict(alphas=[0.1, 0.1]), r"alphas has 2 steps but gammas has 3"),
    (dict(w0=np.ones((2, 2))), r"w0 must be a 1-D array"),
    (dict(gammas=np.full((3, 5), 0.9)), r"gammas must have shape \(T,\) or \(T, D\)"),
])
def test_bad_inputs_are_refused(bad, message):
    args = dict(w0=np.ones(4), alphas=[0.1] * 3, gammas=[0.9] * 3, theta=np.zeros(1))
    args.update(bad)
    with pytest.raises((ValueError, ExactArithmeticError), match=message):
        sgd_momentum(quadratic, **args)


def test_non_finite_gradient_names_its_step():
    def loss(w, theta, t):
        return anp.sum(w ** 2) * (np.inf if t == 3 else 1.0)
    with pytest.raises(ExactArithmeticError, match=r"gradient of the loss at step 3 is not finite"):
        sgd_momentum(loss, np.ones(4), [0.1] * 6, [0.9] * 6, np.zeros(1))


def test_divergence_leaves_the_fixed_point_range_with_a_clear_error():
    with pytest.raises(FixedPointRangeError, match=r"left the fixed-point range .* at step \d+"):
        sgd_momentum(quadratic, np.ones(4), [50.0] * 40, [0.5] * 40, np.zeros(1))


def test_a_loss_that_is_not_deterministic_in_t_is_caught_on_the_way_back():
    calls = []
    def loss(w, theta, t):
        calls.append(t)                    # the loss changes every time it is called
        return anp.sum(w ** 2) * (1.0 + 0.01 * len(calls))
    with pytest.raises(ReversalError, match="must be a deterministic function of"):
        grad(lambda w0: anp.sum(sgd_momentum(loss, w0, [0.1] * 5, [0.9] * 5, np.zeros(1))))(
            np.ones(4))


def test_the_landing_check_catches_a_single_flipped_bit():
    rs = np.random.RandomState(6)
    D, T = 5, 30
    path = ExactPath(rs.randn(D), Schedule(np.full(T, 0.1), [D]), Schedule(np.full(T, 0.9), [D]))
    grads = rs.randn(T, D)
    for t in range(T):
        path.step(t, grads[t])
    path.w.x[2] ^= 1                          # one bit of one weight, as a bad reverse would
    for t in reversed(range(T)):
        path.undo_position(t, path.v.value())
        path.undo_velocity(t, grads[t])
    with pytest.raises(ReversalError, match=r"did not land exactly on the starting point \(1 of 5 weights"):
        path.check_returned()


# --- second-order use and misleading errors (issue 13) ---------------------------------

def _adam_like(optimizer):
    def train(loss, w0, alphas, theta):
        T = len(alphas)
        return optimizer(loss, w0, alphas, np.full(T, 0.6), np.full(T, 0.9), 1e-8, theta)
    return train


def _sgd(loss, w0, alphas, theta):
    return sgd_momentum(loss, w0, alphas, np.full(len(alphas), 0.9), theta)


TRAINERS = {"sgd_momentum": _sgd, "adam": _adam_like(adam), "rmsprop": _adam_like(rmsprop)}


@pytest.mark.parametrize("name", TRAINERS)
def test_second_order_use_is_refused_with_what_to_do_instead(name):
    train = TRAINERS[name]
    loss = lambda w, theta, t: anp.sum((w - theta) ** 2)
    f = lambda theta: anp.sum(train(loss, np.ones(3), np.full(4, 0.1), theta) ** 2)
    with pytest.raises(NotImplementedError, match=rf"hypergradients of hypergradients.*{name}.*unrolled"):
        hessian(f)(np.zeros(3))
    # a loss that trains a network itself, inside a run that is differentiated
    inner = lambda w, theta, t: anp.sum(train(loss, w, np.full(3, 0.1), theta) ** 2)
    g = lambda theta: anp.sum(train(inner, np.ones(3), np.full(3, 0.1), theta))
    with pytest.raises(NotImplementedError, match="hypergradients of hypergradients"):
        grad(g)(np.zeros(3))
    assert np.all(np.isfinite(train(inner, np.ones(3), np.full(3, 0.1), np.zeros(3))))


def test_a_velocity_out_of_range_asks_for_smaller_gradients():
    loss = lambda w, theta, t: 1e5 * anp.sum(w)
    with pytest.raises(FixedPointRangeError, match=r"velocity v.*at step 0.*scale the loss down"):
        sgd_momentum(loss, np.ones(3), [1e-6] * 3, [0.5] * 3, np.zeros(1))


@pytest.mark.parametrize("name", TRAINERS)
def test_the_callback_cannot_change_what_the_reverse_pass_recomputes(name):
    def callback(w, v, g, t):
        g *= 2.0
    train = TRAINERS[name]
    loss = lambda w, theta, t: anp.sum(w ** 2)
    if name == "sgd_momentum":
        run = lambda: sgd_momentum(loss, np.ones(3), [0.1] * 3, [0.9] * 3, np.zeros(1), callback)
    else:
        optimizer = adam if name == "adam" else rmsprop
        run = lambda: optimizer(loss, np.ones(3), [0.1] * 3, [0.6] * 3, [0.9] * 3, 1e-8,
                                np.zeros(1), callback)
    with pytest.raises(ValueError, match="read-only"):
        run()


@pytest.mark.parametrize("name", TRAINERS)
def test_inputs_changed_in_place_between_the_passes_are_named(name):
    alphas, w0 = np.full(4, 0.1), np.ones(3)
    loss = lambda w, theta, t: anp.sum(w ** 2)
    vjp, _ = make_vjp(lambda a: anp.sum(TRAINERS[name](loss, w0, a, np.zeros(1))))(alphas)
    alphas[2] = 0.3
    with pytest.raises(ValueError, match="alphas was changed in place"):
        vjp(1.0)
    alphas[2] = 0.1
    w0[0] = 2.0
    with pytest.raises(ValueError, match="w0 was changed in place"):
        vjp(1.0)


@pytest.mark.parametrize("name", TRAINERS)
def test_theta_none_or_in_the_closure_says_what_to_pass(name):
    train = TRAINERS[name]
    loss = lambda w, theta, t: anp.sum(w ** 2)
    with pytest.raises(ValueError, match="theta is None: pass the hyperparameters"):
        train(loss, np.ones(3), np.full(3, 0.1), None)
    def closure(strength):
        return train(lambda w, _, t: strength * anp.sum(w ** 2), np.ones(3), np.full(3, 0.1),
                     np.zeros(0))
    with pytest.raises(ValueError, match="through theta: pass them as theta"):
        grad(lambda s: anp.sum(closure(s)))(1.0)


@pytest.mark.parametrize("name", TRAINERS)
def test_complex_inputs_are_refused_not_cast_to_their_real_parts(name):
    """numpy casts complex to float64 with only a ComplexWarning; training would then run
    on the real parts. The warning is turned into an error here, so the check must come
    before any cast."""
    train = TRAINERS[name]
    loss = lambda w, theta, t: anp.sum((w - theta) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        with pytest.raises(ValueError, match=r"theta is complex \(complex128\).*real"):
            train(loss, np.ones(3), np.full(3, 0.1), np.array([1.0 + 2.0j, 0.5, 0.0]))
        with pytest.raises(ValueError, match=r"w0 is complex"):
            train(loss, np.ones(3) + 1j, np.full(3, 0.1), np.zeros(3))
        with pytest.raises(ValueError, match=r"alphas is complex"):
            train(loss, np.ones(3), np.full(3, 0.1) + 0j, np.zeros(3))
        with pytest.raises(ValueError, match=r"theta is complex"):   # while differentiated
            grad(lambda a: anp.sum(train(loss, np.ones(3), a, [1j, 0.0, 0.0])))(np.full(3, 0.1))


def test_adam_with_no_steps_returns_w0_and_decay_errors_name_their_schedule():
    loss = lambda w, theta, t: anp.sum(w ** 2)
    w0 = np.array([0.5, -1.25])
    assert np.array_equal(adam(loss, w0, [], [], [], 1e-8, np.zeros(1)), w0)
    assert np.array_equal(rmsprop(loss, w0, [], [], [], 1e-8, np.zeros(1)), w0)
    with pytest.raises(ExactArithmeticError, match=r"beta2s\[1\] = 1.5 at step 1"):
        adam(loss, w0, [0.1] * 3, [0.9] * 3, [0.9, 1.5, 0.9], 1e-8, np.zeros(1))
    with pytest.raises(ExactArithmeticError, match=r"rhos\[2\] = -0.1 at step 2"):
        rmsprop(loss, w0, [0.1] * 3, [0.9] * 3, [0.9, 0.9, -0.1], 1e-8, np.zeros(1))


# --- accuracy against exact and against represented decays (issue 13, item 5) -----------

def stated_bound(against):
    """The relative error the README promises against `against` ('exact' or 'represented')
    decays: the tests hold the README to what they measure."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    found = re.search(rf"against the {against} decays[^.]*?<= ([0-9.e-]+)", readme)
    assert found, f"the README states no accuracy against the {against} decays"
    return float(found.group(1))


def test_accuracy_against_exact_and_against_represented_decays():
    """Per-parameter decays near 0.99 over T = 500. Each decay is applied as n / 2**32, up
    to 2**-33 from the one asked for: against a float64 loop with those very decays the
    hypergradients agree to ~1e-11; against the exact decays the rounding shows (~1e-6)."""
    rs = np.random.RandomState(1)
    T = 500
    w0, theta = problem(T=2, seed=1)[0], np.array([-5.0])
    alphas = rs.uniform(0.2, 1.0, (T, LAYOUT.size))
    gammas = rs.uniform(0.985, 0.995, (T, LAYOUT.size))
    represented = exact.represented_gammas(exact.gamma_numerators(gammas))
    ours = hypergradients(sgd_momentum, w0, alphas, gammas, theta)
    against_exact = hypergradients(sgd_momentum_unrolled, w0, alphas, gammas, theta)
    against_represented = hypergradients(sgd_momentum_unrolled, w0, alphas, represented, theta)
    error_exact = max(relative_error(a, b) for a, b in zip(ours, against_exact))
    error_represented = max(relative_error(a, b) for a, b in zip(ours, against_represented))
    assert error_represented <= stated_bound("represented")
    assert error_exact <= stated_bound("exact")
    assert error_exact > 10 * error_represented     # the rounding of the decays dominates
