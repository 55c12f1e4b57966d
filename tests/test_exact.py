"""Exact arithmetic: bit-exact round trips, the information bound, and refused inputs."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from reproducer import exact
from reproducer.exact import InfoBuffer, div_gamma, mul_gamma


def test_fixed_point_round_trip_and_range():
    i = np.random.RandomState(0).randint(-2 ** 53, 2 ** 53, size=1000, dtype=np.int64)
    assert np.array_equal(exact.to_fixed(exact.to_float(i)), i)   # |value| < 2: exact
    x = np.array([0.0, 1e-3, -3.25, 1023.9])
    assert np.all(np.abs(exact.to_float(exact.to_fixed(x)) - x) <= 2.0 ** -53)
    with pytest.raises(exact.FixedPointRangeError, match=r"w0 left the fixed-point range.*step 7"):
        exact.to_fixed(np.array([1.0, 2000.0]), "w0", step=7)
    with pytest.raises(exact.FixedPointRangeError, match="out of range"):
        exact.to_fixed(np.array([np.nan]))


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5, np.nan, np.inf])
def test_bad_gamma_is_refused_with_its_step(bad):
    gammas = np.full(10, 0.9)
    gammas[4] = bad
    with pytest.raises(exact.ExactArithmeticError, match=r"step 4 is not a decay in \(0, 1\]"):
        exact.gamma_numerators(gammas)


def test_unrepresentably_small_gamma_is_refused():
    with pytest.raises(exact.ExactArithmeticError, match=r"step 2 is below 2\*\*-32"):
        exact.gamma_numerators([0.5, 0.5, 1e-11])


def test_gamma_representation_is_precise():
    gammas = np.random.RandomState(0).uniform(0.01, 1.0, 1000)
    err = exact.represented_gammas(exact.gamma_numerators(gammas)) - gammas
    assert np.max(np.abs(err)) <= 2.0 ** -33


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2 ** 31), st.booleans())
def test_mul_then_div_gamma_is_the_identity(seed, per_parameter):
    rs = np.random.RandomState(seed)
    size, steps = 9, 50
    shape = (steps, size) if per_parameter else (steps,)
    n = exact.gamma_numerators(rs.uniform(1e-6, 1.0, shape))
    v0 = rs.randint(-2 ** 62, 2 ** 62, size=size, dtype=np.int64)
    buffer, v, history = InfoBuffer(size), v0, []
    for t in range(steps):
        history.append(v)
        v = mul_gamma(v, n[t], buffer)
        # the product is right to within one unit of the last place
        exact_product = [int(a) * int(b) / 2 ** exact.GAMMA_BITS for a, b in
                         zip(history[-1], np.broadcast_to(n[t], size))]
        assert np.all(np.abs(np.array(exact_product) - v.astype(float)) <= 1.0 + 2.0 ** -10 * np.abs(v))
    for t in reversed(range(steps)):
        v = div_gamma(v, n[t], buffer)
        assert np.array_equal(v, history[t])
    assert buffer.is_empty()


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.98, 0.999])
@pytest.mark.parametrize("steps", [100, 1000, 10000])
def test_buffer_stays_within_its_information_bound(gamma, steps):
    """Bytes held <= 1.10 x sum_t log2(1/gamma_t) bits + 32 bytes, per parameter."""
    size = 256
    n = exact.gamma_numerators([gamma])[0]
    bound_bits = exact.info_bound_bits(np.full(steps, gamma))
    buffer = InfoBuffer(size, bound_bits)
    v = np.random.RandomState(steps).randint(-2 ** 60, 2 ** 60, size=size)
    for _ in range(steps):
        v = mul_gamma(v, n, buffer)
    assert buffer.nbytes <= 1.10 * bound_bits / 8 * size + 32 * size
    # and the words it spilled are close to the bound, not just padded by the overhead
    spilled_bits = 32.0 * buffer.depth.mean()
    assert spilled_bits <= 1.05 * bound_bits + 32


def test_buffer_grows_when_not_told_how_much_to_expect():
    size, steps, gamma = 64, 2000, 0.5
    buffer = InfoBuffer(size)              # reserves nothing: must grow in small steps
    n = exact.gamma_numerators([gamma])[0]
    v = np.random.RandomState(1).randint(-2 ** 60, 2 ** 60, size=size)
    for _ in range(steps):
        v = mul_gamma(v, n, buffer)
    assert buffer.nbytes <= 1.10 * steps / 8 * size + 32 * size


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([1, 2, 3, 2 ** 31 + 1, 2 ** 32 - 1, 2 ** 32]), min_size=1,
                max_size=200),
       st.sampled_from([-2 ** 62, -1, 0, 1, 2 ** 62 - 1]))
def test_extreme_decays_and_values_round_trip(numerators, value):
    """n = 1 (gamma = 2**-32) and n = 2**32 (gamma = 1), with values at the range's ends."""
    v0 = np.array([value, -value // 3, 12345], dtype=np.int64)
    buffer, v, history = InfoBuffer(3), v0, []
    for n in numerators:
        history.append(v)
        v = mul_gamma(v, np.uint64(n), buffer)
    for n in reversed(numerators):
        v = div_gamma(v, np.uint64(n), buffer)
        assert np.array_equal(v, history.pop())
    assert buffer.is_empty()


def test_popping_an_empty_buffer_is_a_reversal_error():
    with pytest.raises(exact.ReversalError, match="emptied before the reverse pass ended"):
        div_gamma(np.array([5, 7]), np.uint64(2 ** 31), InfoBuffer(2))


def test_held_bits_track_the_information_bound():
    n = exact.gamma_numerators([0.9])[0]
    buffer, v = InfoBuffer(50), np.random.RandomState(7).randint(-2 ** 60, 2 ** 60, size=50)
    for _ in range(500):
        v = mul_gamma(v, n, buffer)
    bound = 500 * np.log2(1 / 0.9)                      # 76 bits
    assert np.mean(buffer.held_bits()) == pytest.approx(bound, rel=0.01)
    assert np.all(np.abs(buffer.held_bits() - bound) < 8)   # each stack, up to rounding
