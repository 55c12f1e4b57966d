"""Small models as pure functions of a flat parameter vector w, and named views of w.

A `Layout` names the blocks of w ("layer1_weights", "layer1_biases", ...), so a value per
block (a per-layer step size, an initialization scale) expands to one per parameter.
"""
import hashlib

import autograd.numpy as np
import numpy as onp
from autograd.core import SparseObject
from autograd.extend import defjvp, defvjp, primitive, vspace


class Layout:
    """Named blocks of a flat parameter vector, in order: name -> shape."""

    def __init__(self, shapes):
        """shapes: list of (name, shape) pairs."""
        self.names = [name for name, _ in shapes]
        self.shapes = dict(shapes)
        self.slices, start = {}, 0
        for name, shape in shapes:
            size = int(np.prod(shape))
            self.slices[name] = slice(start, start + size)
            start += size
        self.size = start
        # index[i] = number of the block that entry i of w belongs to
        self.index = np.concatenate([np.full(self.slices[n].stop - self.slices[n].start, k)
                                     for k, n in enumerate(self.names)]).astype(int)

    def __len__(self):
        return len(self.names)

    def get(self, w, name):
        """The block called name, reshaped: w (D,) -> array of its shape."""
        where = self.slices[name]
        return _take_block(w, where.start, where.stop, self.shapes[name])

    def unflatten(self, w):
        """w (D,) -> dict name -> block."""
        return {name: self.get(w, name) for name in self.names}

    def expand(self, per_block):
        """(..., len(self)) values, one per block -> (..., D), one per parameter."""
        if not hasattr(per_block, "shape"):
            per_block = np.array(per_block, dtype=float)
        if np.shape(per_block)[-1] != len(self.names):
            raise ValueError(f"expected {len(self.names)} values per row (one per block: "
                             f"{', '.join(self.names)}), got shape {np.shape(per_block)}.")
        return per_block[..., self.index]


# Layout.get as a primitive of its own. Autograd's gradient of w[a:b] adds the block's
# gradient into the accumulated gradient with np.add.at, several times slower than a slice
# +=; this saves ~10% of a reverse step (gradient + Hessian-vector product) of the
# 4-million-weight Omniglot networks. Bit-identical results (tests/test_models.py).

@primitive
def _take_block(w, start, stop, shape):
    return onp.reshape(w[start:stop], shape)


@primitive
def _untake_block(g, start, stop, vs):
    """The gradient of _take_block: g placed at [start, stop) of a vector of vspace vs, as
    a sparse object that autograd adds in place into the gradient it is accumulating."""
    def add_into(accumulated):
        accumulated[start:stop] += onp.ravel(g)
        return accumulated
    return SparseObject(vs, add_into)


defvjp(_take_block, lambda ans, w, start, stop, shape:
       lambda g: _untake_block(g, start, stop, vspace(w)))
defvjp(_untake_block, lambda ans, g, start, stop, vs:
       lambda h: np.reshape(h[start:stop], np.shape(g)))
defjvp(_take_block, lambda dw, ans, w, start, stop, shape: _take_block(dw, start, stop, shape))
defjvp(_untake_block, lambda dg, ans, g, start, stop, vs: _untake_block(dg, start, stop, vs))


def mlp_layout(layer_sizes):
    """Layout of an MLP with layer_sizes = [inputs, hidden..., outputs]."""
    shapes = []
    for k, (m, n) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
        shapes += [(f"layer{k}_weights", (m, n)), (f"layer{k}_biases", (n,))]
    return Layout(shapes)


def mlp_predict(layout, w, inputs):
    """Logits (N, outputs) of a tanh MLP; inputs (N, inputs). One layer = linear model."""
    n_layers = len(layout) // 2
    h = inputs
    for k in range(1, n_layers + 1):
        out = np.dot(h, layout.get(w, f"layer{k}_weights")) + layout.get(w, f"layer{k}_biases")
        h = np.tanh(out)
    return out


def log_softmax(logits):
    """(N, C) -> (N, C) log-probabilities."""
    top = np.max(logits, axis=1, keepdims=True)   # for stability; no scipy needed
    return logits - top - np.log(np.sum(np.exp(logits - top), axis=1, keepdims=True))


def cross_entropy(logits, targets):
    """Mean cross-entropy per example; targets one-hot (N, C)."""
    return -np.sum(log_softmax(logits) * targets) / logits.shape[0]


def error_rate(logits, targets):
    """Fraction misclassified; targets one-hot (N, C) or integer labels (N,)."""
    labels = targets if np.ndim(targets) == 1 else np.argmax(targets, axis=1)
    return float(np.mean(np.argmax(logits, axis=1) != labels))


def authors_random_state(*key):
    """The authors' random state for a tuple of integers (HIPS/hypergrad, util.RandomState):
    numpy's RandomState seeded with the first 8 hex digits of md5(str(key)). With it our
    initial weights and minibatches are the very numbers their runs drew."""
    text = str(tuple(int(k) for k in key))     # "(0, 3, 5)", as Python 2 printed it
    return onp.random.RandomState(int(hashlib.md5(text.encode()).hexdigest()[:8], 16))


def authors_init(size, log_scale, seed):
    """w0 (size,) as the authors' scripts draw it: exp(log_scale) times the *second* (size,)
    standard-normal draw from seed, because they first draw a (zero-scaled) initial velocity."""
    draws = np.random.RandomState(seed)
    draws.randn(size)
    return np.exp(log_scale) * draws.randn(size)


def batch_slice(t, n_examples, batch_size):
    """The authors' minibatch of step t (hypergrad BatchList): consecutive slices
    [0, b), [b, 2b), ... of the training set in order, cycling every epoch; the last slice
    of an epoch is shorter when batch_size does not divide n_examples. No shuffling."""
    if not 0 < batch_size <= n_examples:
        raise ValueError(f"batch_size must be in 1..{n_examples}, got {batch_size}.")
    per_epoch = -(-n_examples // batch_size)
    start = (t % per_epoch) * batch_size
    return slice(start, min(start + batch_size, n_examples))


DRAWS = ("epochs", "authors")


def _check_draw(draw):
    if draw not in DRAWS:
        raise ValueError(f"draw must be one of {DRAWS}, got {draw!r}.")


def init_weights(layout, log_scales, seed, draw="epochs"):
    """w0 (D,) = exp(log scale of each block) * standard normal noise drawn from seed.
    draw="authors": the noise of the authors' meta-iteration `seed` (their experiment seed 0),
    authors_random_state(0, seed); "epochs" (default): RandomState(seed)."""
    _check_draw(draw)
    rs = authors_random_state(0, seed) if draw == "authors" else np.random.RandomState(seed)
    return np.exp(layout.expand(log_scales)) * rs.randn(layout.size)


def minibatch(t, n_examples, batch_size, seed=0, draw="epochs"):
    """Indices (batch_size,) of the minibatch of step t, a deterministic function of
    (t, seed), as exact reversal requires.

    draw="epochs" (default): epochs of a permutation fixed by (seed, epoch), no repeats
    within an epoch. draw="authors": batch_size indices drawn with replacement from
    authors_random_state(0, seed, t), as the authors drew them (seed = their meta-iteration).
    """
    _check_draw(draw)
    if batch_size > n_examples:
        raise ValueError(f"batch_size {batch_size} exceeds the {n_examples} examples.")
    if draw == "authors":
        return authors_random_state(0, seed, t).randint(n_examples, size=batch_size)
    per_epoch = n_examples // batch_size
    epoch, k = divmod(t, per_epoch)
    order = np.random.RandomState([seed, epoch]).permutation(n_examples)
    return order[k * batch_size:(k + 1) * batch_size]
