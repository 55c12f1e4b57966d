"""Hyperparameters that act on the training images: a per-pixel affine preprocessing, and
a learned augmentation by small convolution stencils. Images are flat rows (N, 784) of
28 x 28 pixels; everything here is a pure autograd function, so stencils and scales can
be passed to `sgd_momentum` as theta and learned through the training run.
"""
import autograd.numpy as np
import numpy

SIDE = 28


def preprocess(images, theta):
    """Per-pixel affine map: images (N, D) * theta[:D] + theta[D:]; theta (2 D,) holds
    D scales then D offsets (identity: ones then zeros)."""
    D = images.shape[1]
    return images * theta[:D] + theta[D:]


def identity_preprocessing(D=SIDE * SIDE):
    """theta (2 D,) of the identity preprocessing: scales 1, offsets 0."""
    return numpy.concatenate([numpy.ones(D), numpy.zeros(D)])


def check_stencil_size(shape):
    """The side s of a stencil of this shape, or a ValueError unless it is (s, s) with s odd:
    an even stencil has no centre pixel and would shift every image by half a pixel."""
    shape = tuple(shape)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] % 2 == 0:
        raise ValueError(f"an augmentation stencil must be square with an odd side (1, 3, 5, "
                         f"...) so that it is centred on each pixel; got shape {shape}. Use an "
                         f"odd size (pad an even stencil with a row and a column of zeros "
                         f"where you want its centre to be).")
    return shape[0]


def convolve(images, stencil):
    """Each 28 x 28 image correlated with an odd-sized stencil (s, s), zero outside the
    image, same size out: out[i, j] = sum_ab stencil[a, b] x[i + a - s // 2, j + b - s // 2].
    images (N, 784) -> (N, 784); differentiable in both arguments."""
    s = check_stencil_size(np.shape(stencil))
    r = s // 2
    x = np.reshape(images, (-1, SIDE, SIDE))
    n = x.shape[0]
    rows = np.zeros((n, r, SIDE))
    x = np.concatenate([rows, x, rows], axis=1)
    cols = np.zeros((n, SIDE + 2 * r, r))
    x = np.concatenate([cols, x, cols], axis=2)            # (N, 28 + 2r, 28 + 2r)
    out = 0.0
    for a in range(s):
        for b in range(s):
            out = out + stencil[a, b] * x[:, a:a + SIDE, b:b + SIDE]
    return np.reshape(out, (n, SIDE * SIDE))


def step_noise(t, n_stencils, seed=0):
    """eps_t (n_stencils,): standard normal numbers fixed by (seed, t), so the reverse pass
    sees the same augmentation at step t as the forward pass."""
    return numpy.random.RandomState([seed, t]).randn(n_stencils)


def augment(images, stencils, eps):
    """x + sum_k eps_k (A_k * x): images (N, 784), stencils (K, s, s), eps (K,) -> (N, 784)."""
    out = images
    for k in range(len(eps)):
        out = out + eps[k] * convolve(images, stencils[k])
    return out


def initial_stencils(n_stencils, size, scale, seed=0):
    """(n_stencils, size, size) small random stencils: the starting point for learning.
    size must be odd."""
    check_stencil_size((size, size))
    return scale * numpy.random.RandomState(seed).randn(n_stencils, size, size)


def random_shifts(images, t, max_shift=2, seed=0):
    """The hand-made augmentation: every image moved by its own random whole-pixel shift of
    at most max_shift in each direction (zeros fill in), fixed by (seed, t). (N, 784) -> (N, 784)."""
    shifts = numpy.random.RandomState([seed, t]).randint(-max_shift, max_shift + 1, (len(images), 2))
    x = numpy.reshape(images, (-1, SIDE, SIDE))
    out = numpy.zeros_like(x)
    for i, (dy, dx) in enumerate(shifts):
        src = x[i, max(0, -dy):SIDE - max(0, dy), max(0, -dx):SIDE - max(0, dx)]
        out[i, max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return numpy.reshape(out, images.shape)
