"""The Omniglot sweep's pieces against independent computations: each downsampling filter
against PIL itself or a transcription of MATLAB's imresize, the drawer choices against
data.drawer_split, and the hand-written separate training against multitask.train_shared."""
import numpy as np
import pytest
from PIL import Image

from reproducer import omniglot_sweep as sweep
from reproducer.data import area_matrix, drawer_split
from reproducer.multitask import (mean_loss, multitask_layout, pad_tasks, sharing_hypers,
                                  sharing_transforms, train_shared)


def pil_resize(image, size, resample):
    """image (H, W) float -> (size[0], size[1]) by PIL in its 32-bit float mode."""
    out = Image.fromarray(image.astype(np.float32), mode="F").resize((size[1], size[0]), resample)
    return np.asarray(out, dtype=np.float64)


def by_matrices(image, method, size):
    matrix = sweep.DOWNSAMPLERS[method][0]
    return matrix(image.shape[0], size[0]) @ image @ matrix(image.shape[1], size[1]).T


@pytest.mark.parametrize("method, resample", [("pil_bilinear", Image.BILINEAR),
                                              ("pil_lanczos", Image.LANCZOS),
                                              ("nearest", Image.NEAREST)])
def test_the_pil_routines_equal_pil(method, resample):
    image = np.random.RandomState(0).rand(105, 90)          # not square: catches swapped axes
    ours, theirs = by_matrices(image, method, (28, 24)), pil_resize(image, (28, 24), resample)
    assert np.abs(ours - theirs).max() < 1e-5


def test_plain_bilinear_is_interpolation_between_the_two_nearest_pixels():
    # 8 -> 4: output i sits at input coordinate 2 i + 0.5, halfway between pixels 2i and 2i+1
    image = np.arange(8.0)[:, None] * np.ones((1, 8))
    out = by_matrices(image, "bilinear_no_aa", (4, 4))
    assert np.allclose(out[:, 0], [0.5, 2.5, 4.5, 6.5])


def matlab_imresize_weights(n_in, n_out):
    """MATLAB imresize's `contributions` (bicubic, antialiasing on) transcribed with 1-based
    indices: u = x / s + 0.5 (1 - 1 / s), kernel width 4 / s, weights s h(s (u - j)),
    indices folded by the aux vector [1..n_in, n_in..1], rows normalized."""
    s = n_out / n_in
    width = 4 / s
    out = np.zeros((n_out, n_in))
    aux = np.concatenate([np.arange(1, n_in + 1), np.arange(n_in, 0, -1)])
    for x in range(1, n_out + 1):
        u = x / s + 0.5 * (1 - 1 / s)
        left = int(np.floor(u - width / 2))
        for j in range(left, left + int(np.ceil(width)) + 2):
            w = s * sweep.keys_cubic(s * (u - j))
            out[x - 1, aux[(j - 1) % len(aux)] - 1] += w
    return out / out.sum(axis=1, keepdims=True)


def test_the_matlab_routine_follows_imresize_and_mirrors_its_edges():
    ours = sweep.DOWNSAMPLERS["matlab_bicubic"][0](105, 28)
    assert np.abs(ours - matlab_imresize_weights(105, 28)).max() < 1e-12
    image = np.random.RandomState(1).rand(105, 105)
    inner = slice(3, -3)               # away from the edges it is PIL's bicubic
    assert np.abs(by_matrices(image, "matlab_bicubic", (28, 28))[inner, inner]
                  - pil_resize(image, (28, 28), Image.BICUBIC)[inner, inner]).max() < 1e-5
    # at the edges it mirrors, so a ramp rising to the edge is not flattened as PIL's is
    pil = sweep.filter_matrix(105, 28, sweep.keys_cubic, 2.0)
    assert not np.allclose(ours[0], pil[0])


def test_area_averaging_by_hand():
    # 3 -> 2: output pixel 0 covers input 0 and half of input 1
    assert np.allclose(area_matrix(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    images = np.zeros((1, 3, 3))
    images[0, 0, 0] = 1.0
    assert np.isclose(sweep.downsample_with(images, "area", size=2)[0, 0, 0], 4 / 9)


@pytest.mark.parametrize("method", sorted(sweep.DOWNSAMPLERS))
def test_every_routine_keeps_a_blank_page_blank_and_full_ink_full(method):
    for value in (0.0, 1.0):
        out = sweep.downsample_with(np.full((2, 105, 105), value), method)
        assert out.shape == (2, 28, 28) and np.allclose(out, value)


def test_a_bad_routine_or_shape_is_named():
    with pytest.raises(ValueError, match="unknown downsampling 'bicubic'"):
        sweep.downsample_with(np.zeros((1, 105, 105)), "bicubic")
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        sweep.downsample_with(np.zeros((105, 105)), "area")
    with pytest.raises(ValueError, match='boundary must be "renormalize" or "mirror"'):
        sweep.filter_matrix(105, 28, sweep.triangle, 1.0, boundary="wrap")


def test_drawer_choices_are_15_distinct_drawers_and_seed0_is_fig9s():
    for name in ("first", "last", "seed0", "seed3"):
        ids = sweep.drawer_choice(name)
        assert len(ids) == 15 and len(set(ids)) == 15 and set(ids) <= set(range(1, 21))
    assert list(sweep.drawer_choice("first")) == list(range(1, 16))
    assert list(sweep.drawer_choice("last")) == list(range(6, 21))
    train, test = drawer_split(np.arange(1, 21), 5, seed=0)      # what omniglot_tasks keeps
    assert list(sweep.drawer_choice("seed0")) == list(train)
    assert not set(sweep.drawer_choice("seed0")) & set(test)
    assert list(sweep.drawer_choice("seed1")) != list(train)
    with pytest.raises(ValueError, match='"first", "last" or "seed<S>"'):
        sweep.drawer_choice("middle")


def test_train_separate_equals_train_shared_with_separate_networks():
    rng = np.random.RandomState(2)
    sizes = [7, 12, 9]                     # three tasks of different sizes: padding matters there
    images = [rng.randn(n, 784) * 0.3 for n in sizes]
    labels = [rng.randint(0, 5, size=n) for n in sizes]
    layer_sizes, n_tasks = (784, 6, 5, 55), len(sizes)
    layout = multitask_layout(layer_sizes, n_tasks)
    theta = sharing_hypers(sharing_transforms([0.0] * 3, n_tasks), -4.0)
    part = pad_tasks(images, labels, 55)
    reference = train_shared(layout, theta, part, 5, 20, 1.0, 0.9, -2.0, n_tasks, unrolled=True)
    ours = sweep.train_separate(images, labels, layer_sizes, 5, 20, 1.0, 0.9, -4.0, -2.0)
    assert np.abs(ours - reference).max() < 1e-10
    assert mean_loss(layout, ours, part) < mean_loss(layout, 0 * ours, part)    # it trained
