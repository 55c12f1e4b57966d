"""reproducer.jax: the same arithmetic as the numpy path, bit for bit; hypergradients against
the autograd path and against jax.grad through an unrolled float64 lax.scan; the errors.

Compile time counts (seconds per distinct program on a busy machine), so the tests share a
few shapes: D = 12 weights in blocks of 6, 4 and 2, T = 40 steps, and one quadratic loss
whose data (a table of linear terms) and penalties arrive through theta.
"""
import os
import subprocess
import sys

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402

from reproducer import exact, sgd_momentum  # noqa: E402
from reproducer import jax as rj  # noqa: E402
from reproducer.exact import ExactArithmeticError, FixedPointRangeError, ReversalError  # noqa: E402
from reproducer.models import cross_entropy, mlp_layout, mlp_predict  # noqa: E402

D, T, BLOCKS = 12, 40, [6, 4, 2]


def quadratic(xp, T):
    """loss(w, theta, t) = G[t] . w + 1/2 sum(c w^2), theta = (c (D,), G (T, D) flattened):
    its gradient G[t] + c w is the same float64 operations in autograd and in JAX."""
    def loss(w, theta, t):
        c, G = theta[:D], xp.reshape(theta[D:], (T, D))
        return xp.sum(G[t] * w) + 0.5 * xp.sum(c * w * w)
    return loss


LOSS_NP, LOSS_JAX = quadratic(anp, T), quadratic(jnp, T)


def problem(kind, seed=0, T=T):
    """w0, alphas, gammas, theta with one value per step, per block or per parameter."""
    rs = np.random.RandomState(seed)
    shape = {"step": (T,), "block": (T, len(BLOCKS)), "param": (T, D)}[kind]
    theta = np.concatenate([rs.uniform(0.5, 2.0, D), rs.randn(T * D)])
    return rs.randn(D), rs.uniform(0.05, 0.4, shape), rs.uniform(0.3, 0.999, shape), theta


def blocks_of(kind):
    return BLOCKS if kind == "block" else None


@pytest.mark.parametrize("kind", ["step", "block", "param"])
def test_forward_is_bit_for_bit_the_numpy_path(kind):
    w0, alphas, gammas, theta = problem(kind)
    g_np = grad(LOSS_NP)(w0, theta, 3)
    g_jax = jax.grad(LOSS_JAX)(jnp.asarray(w0), jnp.asarray(theta), 3)
    assert np.array_equal(g_np, g_jax), "the two gradients differ: no longer a bit-level test"
    w_np = sgd_momentum(LOSS_NP, w0, alphas, gammas, theta, blocks=blocks_of(kind))
    w_jax = rj.sgd_momentum(LOSS_JAX, w0, alphas, gammas, theta, blocks=blocks_of(kind))
    assert w_jax.dtype == jnp.float64
    assert np.array_equal(np.asarray(w_jax), w_np)


@pytest.mark.parametrize("kind", ["step", "block", "param"])
def test_hypergradients_equal_the_autograd_path(kind):
    w0, alphas, gammas, theta = problem(kind, seed=1)
    blocks = blocks_of(kind)

    def meta_np(w0, alphas, gammas, theta):
        return anp.sum(anp.sin(sgd_momentum(LOSS_NP, w0, alphas, gammas, theta, blocks=blocks)))

    def meta_jax(w0, alphas, gammas, theta):
        return jnp.sum(jnp.sin(rj.sgd_momentum(LOSS_JAX, w0, alphas, gammas, theta, blocks=blocks)))

    expected = grad(meta_np, argnum=[0, 1, 2, 3])(w0, alphas, gammas, theta)
    got = jax.grad(meta_jax, argnums=(0, 1, 2, 3))(*map(jnp.asarray, (w0, alphas, gammas, theta)))
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        assert np.max(np.abs(np.asarray(g) - e)) <= 1e-10 * np.max(np.abs(e))


def test_a_long_run_with_per_parameter_decays_is_bit_exact_and_reverses():
    """3,000 steps, decays from 0.5 to 0.999 per parameter: every state spills many times."""
    T_long = 3000
    loss_np, loss_jax = quadratic(anp, T_long), quadratic(jnp, T_long)
    w0, alphas, gammas, theta = problem("param", seed=2, T=T_long)
    stats = {}
    w_np = sgd_momentum(loss_np, w0, alphas, gammas, theta)
    w_jax = rj.sgd_momentum(loss_jax, w0, alphas, gammas, theta, stats=stats)
    assert np.array_equal(np.asarray(w_jax), w_np)
    bound_words = -np.log2(exact.represented_gammas(exact.gamma_numerators(gammas))).sum(0) / 32
    assert stats["words_used"] <= np.sum(np.floor(bound_words)) + D
    # the reverse pass lands exactly on w0 (else ReversalError) through 3,000 steps
    d = jax.grad(lambda a: jnp.sum(rj.sgd_momentum(loss_jax, w0, a, gammas, theta) ** 2))(
        jnp.asarray(alphas))
    assert np.all(np.isfinite(np.asarray(d)))


def test_the_buffer_holds_the_information_bound_plus_a_margin():
    w0, alphas, gammas, theta = problem("block")
    stats_np, stats_jax = {}, {}
    sgd_momentum(LOSS_NP, w0, alphas, gammas, theta, blocks=BLOCKS, stats=stats_np)
    rj.sgd_momentum(LOSS_JAX, w0, alphas, gammas, theta, blocks=BLOCKS, stats=stats_jax)
    assert stats_jax["bound_bytes"] == pytest.approx(stats_np["bound_bytes"], rel=1e-12)
    # 12 bytes of state and depth per weight, words for 1.02x the bound plus 2 rows
    rows = [np.ceil(1.02 * b / 32) + 2 for b in -np.log2(gammas).sum(0)]
    assert stats_jax["buffer_bytes"] <= 12 * D + 4 * sum(r * s for r, s in zip(rows, BLOCKS)) * 1.13


def tiny_mlp():
    """A 5-4-3 tanh network on 16 random examples, batches of 4 chosen by t."""
    rs = np.random.RandomState(3)
    layout = mlp_layout([5, 4, 3])
    x, y = rs.randn(16, 5), np.eye(3)[rs.randint(0, 3, 16)]
    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def loss_np(w, theta, t):
        i = slice(4 * (t % 4), 4 * (t % 4) + 4)
        return cross_entropy(mlp_predict(layout, w, x[i]), y[i]) + anp.exp(theta[0]) * anp.sum(w ** 2)

    def loss_jax(w, theta, t):
        i = 4 * (t % 4)
        xb, yb = jax.lax.dynamic_slice_in_dim(xj, i, 4), jax.lax.dynamic_slice_in_dim(yj, i, 4)
        return rj.cross_entropy(rj.mlp_predict(layout, w, xb), yb) + jnp.exp(theta[0]) * jnp.sum(w ** 2)
    w0 = 0.5 * rs.randn(layout.size)
    T_mlp = 30
    return layout, loss_np, loss_jax, w0, np.full((T_mlp, len(layout)), 0.3), \
        rs.uniform(0.8, 0.95, (T_mlp, len(layout))), np.array([-3.0])


def test_mlp_hypergradients_against_autograd_and_an_unrolled_scan():
    """Matrix products round differently in BLAS and XLA, so the weights differ in the last
    bits here; the hypergradients agree with the autograd path to 1e-10 and with jax.grad
    through a plain float64 lax.scan fed the represented decays to 1e-9."""
    layout, loss_np, loss_jax, w0, alphas, gammas, theta = tiny_mlp()
    represented = exact.represented_gammas(exact.gamma_numerators(gammas))

    def meta_np(a, g, th):
        return anp.sum(sgd_momentum(loss_np, w0, a, g, th, blocks=layout) ** 2)

    def meta_jax(a, g, th):
        return jnp.sum(rj.sgd_momentum(loss_jax, w0, a, g, th, blocks=layout) ** 2)

    def meta_scan(a, g, th):
        return jnp.sum(rj.sgd_momentum_unrolled(loss_jax, jnp.asarray(w0), a, g, th, blocks=layout) ** 2)

    args = (jnp.asarray(alphas), jnp.asarray(gammas), jnp.asarray(theta))
    ours = jax.grad(meta_jax, argnums=(0, 1, 2))(*args)
    autograd_path = grad(meta_np, argnum=[0, 1, 2])(alphas, gammas, theta)
    scan = jax.jit(jax.grad(meta_scan, argnums=(0, 1, 2)))(args[0], jnp.asarray(represented), args[2])
    for o, a, s in zip(ours, autograd_path, scan):
        o = np.asarray(o)
        assert np.max(np.abs(o - a)) <= 1e-10 * np.max(np.abs(a))
        assert np.max(np.abs(o - np.asarray(s))) <= 1e-9 * np.max(np.abs(s))


def test_the_arithmetic_kernels_are_bit_for_bit_exact_mul_and_div_gamma():
    """Random and extreme v, states, and numerators from 1 to 2**32, one buffer."""
    rs = np.random.RandomState(4)
    size = 64
    v = rs.randint(-2 ** 62, 2 ** 62, size, dtype=np.int64)
    v[:4] = [2 ** 62, -2 ** 62, 0, -1]
    n = rs.randint(1, 2 ** 32 + 1, size).astype(np.uint64)
    n[:4] = [1, 2 ** 32, 2 ** 31, 3]
    mul_then_div_back(v, n, 20)


def mul_then_div_back(v, n, steps):
    """`steps` mul_gammas of v by n, each equal to exact.mul_gamma's product and buffer
    (state and depth), then as many div_gammas back to v and an empty buffer. Returns the
    jitted div_gamma and the buffer's segments."""
    size = len(v)
    segments = ((0, size),)
    buffer = exact.InfoBuffer(size, 64 * 20)
    buf = rj.new_buffer([64 * 20], segments)
    mul = jax.jit(lambda v, n, buf: rj.mul_gamma(v, n, buf, segments))
    div = jax.jit(lambda v, n, buf: rj.div_gamma(v, n, buf, segments))
    products = [v]
    for _ in range(steps):
        product, buf, full = mul(jnp.asarray(products[-1]), jnp.asarray(n), buf)
        expected = exact.mul_gamma(products[-1], n, buffer)
        assert np.array_equal(np.asarray(product), expected) and int(full) == 0
        assert np.array_equal(np.asarray(buf.state), buffer.state)
        assert np.array_equal(np.asarray(buf.depth), buffer.depth)
        products.append(expected)
    for k in reversed(range(1, len(products))):
        quotient, buf, emptied = div(jnp.asarray(products[k]), jnp.asarray(n), buf)
        assert np.array_equal(np.asarray(quotient), products[k - 1]) and not bool(emptied)
    assert bool(jnp.all(buf.state == rj._LOW)) and not bool(jnp.any(buf.depth))
    return div, segments


def test_callback_sees_the_numpy_paths_steps():
    w0, alphas, gammas, theta = problem("step")
    seen_np, seen_jax = [], []
    sgd_momentum(LOSS_NP, w0, alphas, gammas, theta,
                 callback=lambda w, v, g, t: seen_np.append((t, w.copy(), v.copy(), g.copy())))
    rj.sgd_momentum(LOSS_JAX, w0, alphas, gammas, theta,
                    callback=lambda w, v, g, t: seen_jax.append((t, w.copy(), v.copy(), g.copy())))
    assert [s[0] for s in seen_jax] == list(range(T))
    for a, b in zip(seen_np, seen_jax):
        assert all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:]))


# --- errors: the numpy path's messages, raised after the pass --------------------------------

def same_error(kind, w0, alphas, gammas, theta):
    """The exception each path raises for the same inputs: (numpy's, JAX's)."""
    errors = []
    for sgd_fn, loss in ((sgd_momentum, LOSS_NP), (rj.sgd_momentum, LOSS_JAX)):
        with pytest.raises(ExactArithmeticError) as info:
            sgd_fn(loss, w0, alphas, gammas, theta, blocks=blocks_of(kind))
        errors.append(info.value)
    return errors


def test_range_errors_name_the_same_step_and_numbers():
    w0, alphas, gammas, theta = problem("step")
    alphas = alphas.copy()
    alphas[17] = 3e4                                   # the weights leave |w| < 1024 at step 17
    numpy_error, jax_error = same_error("step", w0, alphas, gammas, theta)
    assert type(jax_error) is type(numpy_error) is FixedPointRangeError
    assert str(jax_error) == str(numpy_error) and "at step 17" in str(jax_error)
    theta = theta.copy()
    theta[D + 9 * D + 3] = 1e9                         # a gradient too large for v at step 9
    numpy_error, jax_error = same_error("step", w0, problem("step")[1], gammas, theta)
    assert str(jax_error) == str(numpy_error) and "the step of the velocity v" in str(jax_error)
    theta[D + 9 * D + 3] = np.nan                      # a NaN gradient at step 9
    numpy_error, jax_error = same_error("step", w0, problem("step")[1], gammas, theta)
    assert str(jax_error) == str(numpy_error) and "not finite" in str(jax_error)


def test_bad_decays_and_shapes_get_the_numpy_paths_messages():
    w0, alphas, gammas, theta = problem("block")
    bad = gammas.copy()
    bad[5, 1] = 1.5
    numpy_error, jax_error = same_error("block", w0, alphas, bad, theta)
    assert str(jax_error) == str(numpy_error)
    with pytest.raises(ValueError, match=r"alphas must have shape \(T,\) or \(T, D\)"):
        rj.sgd_momentum(LOSS_JAX, w0, alphas[:, :2], gammas, theta, blocks=BLOCKS)
    with pytest.raises(ValueError, match="theta is None"):
        rj.sgd_momentum(LOSS_JAX, w0, alphas, gammas, None, blocks=BLOCKS)


def test_a_buffer_overflow_is_a_clear_error(monkeypatch):
    w0, alphas, gammas, theta = problem("step")
    monkeypatch.setattr(rj, "new_buffer", lambda bits, segments: rj.Buffer(
        jnp.full(D, rj._LOW, dtype=jnp.uint64), jnp.zeros(D, dtype=jnp.int32),
        (jnp.zeros((1, D), dtype=jnp.uint32),)))
    with pytest.raises(ExactArithmeticError, match=r"buffer overflowed at step \d+: \d+ parameters "
                       r"needed more than the 1 words"):
        rj.sgd_momentum(LOSS_JAX, w0, alphas, np.full(T, 0.3), theta)   # 69 bits: 3 words


def test_a_loss_that_changes_between_the_passes_is_caught():
    """The reverse pass traces the loss again: a number it reads from Python at trace time
    (here a coefficient changed before the reverse pass) gives other gradients there."""
    w0, alphas, gammas, theta = problem("step")
    coefficient = {"c": 0.5}

    def loss(w, theta, t):
        return LOSS_JAX(w, theta, t) + coefficient["c"] * jnp.sum(w * w)

    w_T, vjp = jax.vjp(lambda a: rj.sgd_momentum(loss, w0, a, gammas, theta),
                       jnp.asarray(alphas))
    coefficient["c"] = 0.5 + 1e-3
    with pytest.raises(ReversalError, match="(did not land exactly on the starting point|"
                       "buffer was emptied before the reverse pass ended).*deterministic function"):
        vjp(jnp.ones(D))


def test_the_arrays_a_loss_closes_over_are_arguments_of_both_passes():
    """The loss's data (closed over) are taken once per call, passed to the compiled passes as
    arguments (not copied into them as constants), and the reverse pass uses the same ones:
    replacing the data between the passes leaves the hypergradient that of the run that
    happened."""
    w0, alphas, gammas, _ = problem("step")
    table = {"G": np.random.RandomState(5).randn(T, D)}

    def loss(w, theta, t):
        return jnp.sum(jnp.asarray(table["G"])[t] * w) + 0.5 * jnp.sum(w * w)

    run = lambda a: rj.sgd_momentum(loss, w0, a, gammas, jnp.zeros(0))
    _, vjp = jax.vjp(run, jnp.asarray(alphas))
    expected = jax.vjp(run, jnp.asarray(alphas))[1](jnp.ones(D))[0]
    table["G"] = table["G"] + 1e-3
    assert np.array_equal(np.asarray(vjp(jnp.ones(D))[0]), np.asarray(expected))
    big = jnp.asarray(np.random.RandomState(6).randn(300, D))       # 28.8 kB of data
    call, (w0_, a_, g_, th_) = rj._prepare(lambda w, th, t: jnp.sum(big[t] * w), w0, alphas,
                                           gammas, jnp.zeros(0), None, None, None)
    _, w0_x, represented, numerators, buf = rj._forward_inputs(call.setup, w0_, a_, g_, th_)
    text = rj._forward_jit.lower(call.setup, w0_x, a_, represented, numerators, th_, buf,
                                 call.consts).as_text()
    shape = f"tensor<300x{D}xf64>"
    assert shape in text, "the data is not an argument of the forward pass"
    assert not [line for line in text.splitlines() if "constant" in line and shape in line], \
        "the forward pass holds the loss's data as a constant"


def test_a_second_backward_pass_gives_the_same_gradient():
    w0, alphas, gammas, theta = problem("step")
    _, vjp = jax.vjp(lambda a: rj.sgd_momentum(LOSS_JAX, w0, a, gammas, theta), jnp.asarray(alphas))
    first, second = vjp(jnp.ones(D))[0], vjp(jnp.ones(D))[0]
    assert np.array_equal(np.asarray(first), np.asarray(second))


def _passes_compiled(caplog):
    """Which of the two passes XLA compiled since the log was last cleared."""
    text = " ".join(r.getMessage() for r in caplog.records if "XLA compilation" in r.getMessage())
    caplog.clear()
    return [name for name in ("_forward", "_reverse") if f"jit({name})" in text]


def test_precompile_compiles_exactly_the_programs_a_hypergradient_then_runs(caplog):
    """The benchmark times and measures after precompile; if precompile lowered a different
    signature (another dtype, no abstract mesh for the VJP), jax.grad would compile again
    inside the timed region. A loss of its own gives programs no other test has compiled."""
    loss = quadratic(jnp, T)
    w0, alphas, gammas, theta = problem("block", seed=5)
    meta = lambda a: jnp.sum(rj.sgd_momentum(loss, jnp.asarray(w0), a, jnp.asarray(gammas),
                                             jnp.asarray(theta), blocks=BLOCKS) ** 2)
    caplog.set_level("WARNING", logger="jax._src.dispatch")
    with jax.log_compiles():
        rj.precompile(loss, w0, alphas, gammas, theta, blocks=BLOCKS)
        assert _passes_compiled(caplog) == ["_forward", "_reverse"]
        value, g = jax.value_and_grad(meta)(jnp.asarray(alphas))
        assert _passes_compiled(caplog) == [], "the hypergradient compiled a pass again"
    reference = grad(lambda a: anp.sum(sgd_momentum(LOSS_NP, w0, a, gammas, theta,
                                                    blocks=BLOCKS) ** 2))(alphas)
    assert np.max(np.abs(np.asarray(g) - reference)) <= 1e-10 * np.max(np.abs(reference))


def test_under_jit_and_second_order_it_says_what_to_do():
    w0, alphas, gammas, theta = problem("step")
    run = lambda a: jnp.sum(rj.sgd_momentum(LOSS_JAX, w0, a, gammas, theta))
    with pytest.raises(ValueError, match="outside jax.jit"):
        jax.jit(run)(jnp.asarray(alphas))
    with pytest.raises(ValueError, match="not supported"):
        jax.grad(lambda a: jnp.sum(jax.grad(run)(a)))(jnp.asarray(alphas))


def test_a_hyperparameter_read_from_the_closure_is_refused():
    w0, alphas, gammas, _ = problem("step")

    def meta(h):
        return jnp.sum(rj.sgd_momentum(lambda w, theta, t: h * jnp.sum(w * w), w0, alphas,
                                       gammas, jnp.zeros(0)))
    with pytest.raises(ValueError, match="through theta"):
        jax.grad(meta)(1.0)


def test_without_64_bit_mode_it_says_how_to_turn_it_on():
    code = ("import jax.numpy as jnp; from reproducer.jax import sgd_momentum\n"
            "sgd_momentum(lambda w, th, t: jnp.sum(w * w), [1.0], [0.1], [0.9], [0.0])")
    env = dict(os.environ, JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "jax.config.update('jax_enable_x64', True)" in result.stderr


def _divmod_cases():
    """(x, n) pairs for rj._divmod inside its precondition |x / n| <= 2**50: random, and at the
    edges (x = k n - 1, k n, k n + n - 1, where a rounded estimate lands one off), for uint64
    x up to 2**64 - 1 and int64 x from -2**63 to 2**63 - 1, n from 1 to 2**32."""
    rs = np.random.RandomState(23)
    cases = {np.uint64: [], np.int64: []}
    top = 2 ** 64
    # random: n anywhere in [1, 2**32], quotient below 2**32 (as mul_gamma and div_gamma meet)
    n = rs.randint(1, 2 ** 32 + 1, 2000, dtype=np.int64)
    q = rs.randint(0, 2 ** 32, 2000, dtype=np.int64)
    r = (rs.randint(0, 2 ** 62, 2000, dtype=np.int64) % n)
    cases[np.uint64] += [(int(a) * int(b) + int(c), int(b)) for a, b, c in zip(q, n, r)]
    # random: any uint64 / int64 x with n >= 2**14 (quotients up to 2**50)
    nn = rs.randint(2 ** 14, 2 ** 32 + 1, 2000, dtype=np.int64)
    xu = rs.randint(0, 2 ** 63, 2000, dtype=np.int64).astype(np.uint64) * np.uint64(2) \
        + rs.randint(0, 2, 2000).astype(np.uint64)
    cases[np.uint64] += [(int(a), int(b)) for a, b in zip(xu, nn)]
    xs = rs.randint(-2 ** 63, 2 ** 63 - 1, 2000, dtype=np.int64)
    cases[np.int64] += [(int(a), int(b)) for a, b in zip(xs, nn)]
    # exact multiples k n and their neighbours, where the estimate lands one below or above
    for k, n in zip(rs.randint(1, 2 ** 32, 500, dtype=np.int64), nn[:500]):
        cases[np.uint64] += [(int(k) * int(n) + d, int(n)) for d in (-1, 0)]
        k = int(rs.randint(1, min(2 ** 50, 2 ** 63 // int(n) - 1), dtype=np.int64))
        cases[np.int64] += [(s * (k * int(n)) + d, int(n)) for s in (1, -1) for d in (-1, 0)]
    # adversarial: the edges of the correction, the ends of the ranges
    for n in [1, 2, 3, 7, 2 ** 13 - 1, 2 ** 13, 2 ** 13 + 1, 2 ** 14, 2 ** 31 + 1, 2 ** 32 - 5,
              2 ** 32 - 1, 2 ** 32, 3221225473]:
        kmax = 2 ** 32 if n < 2 ** 14 else min(2 ** 50, top // n)      # quotient bound
        for k in [1, 2, kmax // 3, kmax // 2 + 1, kmax - 2, kmax - 1, kmax]:
            for x in (k * n - 1, k * n, k * n + n - 1):
                if 0 <= x < top and x // n < min(kmax, 2 ** 50):
                    cases[np.uint64].append((x, n))
                for sx in (x, -x):
                    if -2 ** 63 <= sx < 2 ** 63 and abs(sx / n) <= 2 ** 50:
                        cases[np.int64].append((sx, n))
    for n in [2 ** 14, 2 ** 14 + 3, 2 ** 20 + 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32]:
        cases[np.uint64] += [(top - 1 - i, n) for i in range(3)]
        cases[np.int64] += [(x, n) for x in (2 ** 63 - 1, 2 ** 63 - 2, -2 ** 63, -2 ** 63 + 1)]
    cases[np.uint64] += [(2 ** 32 - 1, 1), (2 ** 32 * (2 ** 32 - 1), 2 ** 32), (0, 1), (0, 2 ** 32)]
    cases[np.int64] += [(0, 2 ** 13), (-1, 2 ** 13), (-1, 2 ** 32), (1, 2 ** 32),
                        (-2 ** 63, 2 ** 13), (-2 ** 63 + 1, 2 ** 13), (2 ** 63 - 1, 2 ** 13),
                        (2 ** 63 - 1, 2 ** 13 + 1)]
    return cases


def test_the_division_kernel_is_numpys_floor_division_random_and_at_the_edges():
    """rj._divmod (a float64 estimate, then one integer correction) against numpy's exact
    // and % on uint64 and int64."""
    divmod_ = jax.jit(lambda x, n: rj._divmod(x, n, 1.0 / n.astype(jnp.float64)))
    for dtype, pairs in _divmod_cases().items():
        x = np.array([p[0] for p in pairs], dtype=dtype)
        n = np.array([p[1] for p in pairs], dtype=np.uint64)
        q, r = divmod_(jnp.asarray(x), jnp.asarray(n))
        n_x = n.astype(dtype)
        assert q.dtype == dtype and r.dtype == dtype
        wrong = (np.asarray(q) != x // n_x) | (np.asarray(r) != x % n_x)
        assert not wrong.any(), (dtype, x[wrong][:5], n[wrong][:5])


def test_the_kernels_fast_path_is_bit_for_bit_exact_mul_and_div_gamma():
    """mul_gamma and div_gamma with every numerator >= 2**13 (div_gamma's signed division
    then takes the float estimate, not the fallback), v at the ends of int64's range."""
    rs = np.random.RandomState(5)
    size = 64
    v = rs.randint(-2 ** 62, 2 ** 62, size, dtype=np.int64)
    v[:6] = [2 ** 62, -2 ** 62, 0, -1, 2 ** 62 - 1, -2 ** 62 + 1]
    n = rs.randint(2 ** 13, 2 ** 32 + 1, size).astype(np.uint64)
    n[:6] = [2 ** 13, 2 ** 32, 2 ** 13, 2 ** 32 - 1, 2 ** 13 + 1, 2 ** 31]
    div, segments = mul_then_div_back(v, n, 12)
    # one div_gamma of v near +-2**63 (beyond any product), against numpy: with these n (the
    # float estimate), then with some n < 2**13 (the fallback); states with x >> 32 >= 2**32 / n
    # (so that none is left below 2**32, which would need a word from the empty stack)
    v = rs.randint(-2 ** 63, 2 ** 63 - 1, size, dtype=np.int64)
    v[:6] = [2 ** 63 - 1, -2 ** 63, 2 ** 63 - 2, -2 ** 63 + 1, 2 ** 63 - 2 ** 13,
             -2 ** 63 + 2 ** 13]
    small = n.copy()
    small[:6] = [2, 3, 2 ** 13 - 1, 2, 7, 5]
    for numerators in (n, small):
        buffer = exact.InfoBuffer(size)
        high = [rs.randint(2 ** 32 // int(m) + 1, 2 ** 32, dtype=np.int64) for m in numerators]
        buffer.state = (np.array(high, dtype=np.uint64) << np.uint64(32)) \
            | rs.randint(0, 2 ** 32, size, dtype=np.int64).astype(np.uint64)
        buf = rj.new_buffer([64 * 20], segments)._replace(state=jnp.asarray(buffer.state))
        quotient, buf, emptied = div(jnp.asarray(v), jnp.asarray(numerators), buf)
        assert np.array_equal(np.asarray(quotient), exact.div_gamma(v.copy(), numerators, buffer))
        assert np.array_equal(np.asarray(buf.state), buffer.state) and not bool(emptied)
