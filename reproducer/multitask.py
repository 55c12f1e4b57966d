"""Multitask networks for Omniglot (Figs. 8, 9): one MLP per task in one flat vector w.

Block "layer{k}_weights" holds the weights of layer k of all tasks, shape (n_tasks, m, n),
so a penalty that couples the tasks sees each layer as a matrix (n_tasks, m n). A tied
layer is stored once, shape (1, m, n), and used by every task.
"""
import autograd.numpy as np

from .data import one_hot
from .models import Layout, init_weights
from .sgd import sgd_momentum
from .penalties import coupling_matrix, coupling_penalty, n_pairs


def multitask_layout(layer_sizes, n_tasks, tied_layers=()):
    """Layout of n_tasks MLPs with layer_sizes = [inputs, hidden..., outputs]; the layers
    numbered in tied_layers (from 1) are shared by all tasks."""
    shapes = []
    for k, (m, n) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
        copies = 1 if k in tied_layers else n_tasks
        shapes += [(f"layer{k}_weights", (copies, m, n)), (f"layer{k}_biases", (copies, n))]
    return Layout(shapes)


def predict(layout, w, inputs):
    """Logits (n_tasks, N, outputs) of every task's tanh MLP on its own inputs
    (n_tasks, N, inputs), as one batched matrix product per layer (a tied layer broadcasts)."""
    h = inputs
    for k in range(1, len(layout) // 2 + 1):
        W, b = layout.get(w, f"layer{k}_weights"), layout.get(w, f"layer{k}_biases")
        out = np.matmul(h, W) + b[:, None, :]
        h = np.tanh(out)
    return out


def task_losses(layout, w, part):
    """Mean cross-entropy per example of each task (n_tasks,). part: a `pad_tasks` triple
    (inputs (n_tasks, N, 784), one-hot targets (n_tasks, N, outputs), weights (n_tasks, N)
    = 1 / N_i on task i's N_i examples and 0 on padding)."""
    inputs, targets, weights = part
    logits = predict(layout, w, inputs)
    top = np.max(logits, axis=2, keepdims=True)
    log_p = logits - top - np.log(np.sum(np.exp(logits - top), axis=2, keepdims=True))
    return -np.sum(weights * np.sum(log_p * targets, axis=2), axis=1)


def pad_tasks(images, labels, n_outputs):
    """Lists of per-task images (N_i, 784) and integer labels (N_i,) -> the padded triple
    (inputs (n_tasks, N, 784), one-hot targets (n_tasks, N, n_outputs), weights (n_tasks, N))
    with N = max N_i, so that all tasks go through one batched product."""
    N = max(len(y) for y in labels)
    inputs = np.zeros((len(images), N, images[0].shape[1]))
    targets = np.zeros((len(images), N, n_outputs))
    weights = np.zeros((len(images), N))
    for i, (x, y) in enumerate(zip(images, labels)):
        inputs[i, :len(y)], targets[i, :len(y)], weights[i, :len(y)] = x, one_hot(y, n_outputs), 1 / len(y)
    return inputs, targets, weights


def n_coupling_hypers(n_layers, n_tasks):
    """Length of the hyperparameter vector of the coupling penalty: per layer, n_tasks log
    diagonal entries and n (n - 1) / 2 log pair couplings."""
    return n_layers * (n_tasks + n_pairs(n_tasks))


def coupling_matrices(hypers, n_layers, n_tasks):
    """hypers (n_layers (n + n (n - 1) / 2),) -> list of n_layers matrices A (n, n)."""
    per_layer = np.reshape(hypers, (n_layers, -1))
    return [coupling_matrix(h[:n_tasks], h[n_tasks:]) for h in per_layer]


def initial_coupling_hypers(n_layers, n_tasks, log_l2, log_coupling):
    """Every layer: the same L2 penalty exp(log_l2) on each task, and every pair of tasks
    coupled by exp(log_coupling) (-inf: separate tasks)."""
    row = np.concatenate([np.full(n_tasks, log_l2), np.full(n_pairs(n_tasks), log_coupling)])
    return np.tile(row, n_layers)


def without_couplings(hypers, n_layers, n_tasks):
    """The same L2 strengths with every pair coupling removed (exp(-inf) = 0): separate
    networks that keep what the hyperparameters learned about each task's L2."""
    per_layer = np.array(np.reshape(hypers, (n_layers, -1)), dtype=float)
    per_layer[:, n_tasks:] = -np.inf
    return per_layer.ravel()


def total_penalty(layout, w, hypers, n_tasks):
    """sum over layers k of the coupling penalty of the weights of layer k. A tied layer
    stands for n_tasks identical copies W, whose penalty is sum_ij A_ij |W|^2."""
    n_layers = len(layout) // 2
    total = 0.0
    for k, A in enumerate(coupling_matrices(hypers, n_layers, n_tasks), start=1):
        W = layout.get(w, f"layer{k}_weights")
        W = np.reshape(W, (W.shape[0], -1))
        total = total + (coupling_penalty(W, A) if W.shape[0] == n_tasks
                         else np.sum(A) * np.sum(W ** 2))
    return total


def split_tasks(tasks, n_valid_drawers, seed=0, n_outputs=55, center=True):
    """Omniglot task dicts (data.omniglot_tasks) -> {"train", "valid", "test"}, each a
    `pad_tasks` triple. Validation takes n_valid_drawers of the training drawers, the same
    for every task, chosen by seed. center: subtract the mean training image (over the
    training examples of all tasks) from every image, as the authors' code did; padding
    rows stay zero."""
    drawers = np.unique(tasks[0]["train_drawers"])
    if not 0 < n_valid_drawers < len(drawers):
        raise ValueError(f"n_valid_drawers must be between 1 and {len(drawers) - 1} (the "
                         f"tasks have {len(drawers)} training drawers), got {n_valid_drawers}.")
    valid = np.random.RandomState(seed).choice(drawers, n_valid_drawers, replace=False)
    keep = {"train": lambda task: ~np.isin(task["train_drawers"], valid),
            "valid": lambda task: np.isin(task["train_drawers"], valid)}
    parts = {part: pad_tasks([task["train_images"][keep[part](task)] for task in tasks],
                             [task["train_labels"][keep[part](task)] for task in tasks], n_outputs)
             for part in keep}
    parts["test"] = pad_tasks([task["test_images"] for task in tasks],
                              [task["test_labels"] for task in tasks], n_outputs)
    if center:
        train_inputs, _, train_weights = parts["train"]      # padding rows are zero
        mean = np.sum(train_inputs, axis=(0, 1)) / np.sum(train_weights > 0)
        parts = {part: ((inputs - mean) * (weights > 0)[:, :, None], targets, weights)
                 for part, (inputs, targets, weights) in parts.items()}
    return parts


def mean_loss(layout, w, part):
    """Mean over tasks of each task's mean cross-entropy per example."""
    return np.mean(task_losses(layout, w, part))


def train(layout, hypers, part, seed, T, alpha, gamma, log_init_scale, n_tasks):
    """w_T (D,): T full-batch steps of SGD with momentum on the sum of the tasks' losses
    plus the coupling penalty of `hypers`, from init_weights(log_init_scale, seed).
    A tied layer gets step alpha / n_tasks: it receives the sum of n_tasks gradients."""
    def loss(w, theta, t):
        return np.sum(task_losses(layout, w, part)) + total_penalty(layout, w, theta, n_tasks)
    copies = np.array([layout.shapes[name][0] for name in layout.names])
    alphas = np.tile(alpha * np.where(copies == 1, 1.0 / n_tasks, 1.0), (T, 1))
    w0 = init_weights(layout, np.full(len(layout), log_init_scale), seed)
    return sgd_momentum(loss, w0, alphas, np.full((T, len(layout)), gamma), hypers,
                        blocks=layout)


# ---------------------------------------------------------------------------------------
# Sharing by reparametrization (the authors' Omniglot experiment, Figs. 8-9)
#
# Every layer k of the ten networks is a linear mix of ten free "task vectors" z_j (the
# layer's weights and biases): w_i = sum_j T_k[i, j] z_j. Training runs SGD on z with an L2
# penalty exp(log_l2) |z|^2, so a gradient of task i reaches every z_j with T_k[i, j] != 0
# and the tasks share during training. The hyperparameters are the matrices T_k (and
# log_l2): theta = [T_1.ravel(), ..., T_K.ravel(), log_l2].

def sharing_transforms(layer_corr, n_tasks):
    """(n_layers, n_tasks, n_tasks): layer k's T = (1 - c_k) I + c_k / n_tasks * ones, the
    authors' make_transform. c = 0: separate networks; c = 1: every task uses the mean of the
    ten z's, one shared layer; their learned setting starts from c = 0.5 in every layer."""
    eye, full = np.eye(n_tasks), np.full((n_tasks, n_tasks), 1.0 / n_tasks)
    return np.array([(1.0 - c) * eye + c * full for c in layer_corr])


def sharing_hypers(transforms, log_l2):
    """theta = [T_1.ravel(), ..., T_K.ravel(), log_l2] (n_layers n_tasks^2 + 1,)."""
    return np.concatenate([np.ravel(transforms), [log_l2]])


def unpack_sharing(theta, n_layers, n_tasks):
    """theta -> (transforms (n_layers, n_tasks, n_tasks), log_l2)."""
    expected = n_layers * n_tasks ** 2 + 1
    if np.shape(theta) != (expected,):
        raise ValueError(f"theta must have shape ({expected},) = {n_layers} layers x "
                         f"{n_tasks}^2 + 1, got {np.shape(theta)}.")
    return np.reshape(theta[:-1], (n_layers, n_tasks, n_tasks)), theta[-1]


def shared_weights(layout, z, transforms):
    """The ten networks' weights w (D,) (layout of multitask_layout, untied) from the free
    vectors z (D,): block by block, w_i = sum_j T_k[i, j] z_j for layer k's weights and
    biases."""
    pieces = []
    for name in layout.names:
        k = int(name[len("layer"):name.index("_")])
        Z = layout.get(z, name)
        if Z.shape[0] != transforms.shape[1]:
            raise ValueError(f"block {name} holds {Z.shape[0]} copies; reparametrized sharing "
                             f"needs one per task ({transforms.shape[1]}), not tied layers.")
        Z2 = np.reshape(Z, (Z.shape[0], -1))
        pieces.append(np.ravel(np.dot(transforms[k - 1], Z2)))
    return np.concatenate(pieces)


def sharing_loss(layout, part, n_tasks):
    """The training objective loss(z, theta, t) of sgd_momentum: the sum over tasks of each
    task's mean cross-entropy with weights shared_weights(z, T), plus exp(log_l2) |z|^2
    (full batch: t is unused)."""
    n_layers = len(layout) // 2

    def loss(z, theta, t):
        transforms, log_l2 = unpack_sharing(theta, n_layers, n_tasks)
        w = shared_weights(layout, z, transforms)
        return np.sum(task_losses(layout, w, part)) + np.exp(log_l2) * np.dot(z, z)
    return loss


def train_shared(layout, theta, part, seed, T, alpha, gamma, log_init_scale, n_tasks,
                 method="exact", unrolled=False):
    """The ten networks' weights w (D,) after T full-batch steps of SGD with momentum on z
    (sharing_loss), from z_0 = exp(log_init_scale) * standard normal drawn from seed.
    Differentiable in theta through the reversible sgd_momentum (or, unrolled=True, through
    plain float64 autograd, the reference of the tests)."""
    from .sgd import sgd_momentum_unrolled
    n_layers = len(layout) // 2
    z0 = init_weights(layout, np.full(len(layout), log_init_scale), seed)
    alphas, gammas = np.full(T, float(alpha)), np.full(T, float(gamma))
    loss = sharing_loss(layout, part, n_tasks)
    if unrolled:
        z = sgd_momentum_unrolled(loss, z0, alphas, gammas, theta)
    else:
        z = sgd_momentum(loss, z0, alphas, gammas, theta, method=method)
    return shared_weights(layout, z, unpack_sharing(theta, n_layers, n_tasks)[0])


def sharing_correlations(transform):
    """The correlation between tasks that T implies, as the authors plot it: C = T T^T (the
    covariance of w = T z for z with independent unit entries), normalized to unit diagonal."""
    C = np.dot(transform, transform.T)
    d = np.sqrt(np.diag(C))
    return C / (d[:, None] * d[None, :])


def character_partition(labels, counts, rng):
    """Split one task's examples at random, character by character: for each class, a random
    counts[0] of its examples go to part 0, the next counts[1] to part 1, ... (the authors'
    random_partition). labels (N,) ints; every class must have exactly sum(counts) examples.
    Returns a list of index arrays, one per part."""
    parts = [[] for _ in counts]
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if len(rows) != sum(counts):
            raise ValueError(f"class {c} has {len(rows)} examples; the split {list(counts)} "
                             f"needs exactly {sum(counts)}.")
        rows = rng.permutation(rows)
        for i, end in enumerate(np.cumsum(counts)):
            parts[i].extend(rows[end - counts[i]:end])
    return [np.sort(np.array(p, dtype=int)) for p in parts]


def authors_split(tasks, seed, counts=(12, 3), center=True):
    """The authors' data: each task's 15 examples per character (its `train_*` arrays, the
    15 drawers omniglot_tasks kept) split at random per character into counts = (12, 3)
    training and test examples. center: subtract the mean image of all the tasks' examples
    (all 15 per character, as their subtract_mean did on the whole data set) from every
    image. Returns {"train": (images list, labels list), "test": ...} of per-task arrays."""
    rng = np.random.RandomState(seed)
    mean = 0.0
    if center:
        mean = np.mean(np.concatenate([task["train_images"] for task in tasks]), axis=0)
    out = {"train": ([], []), "test": ([], [])}
    for task in tasks:
        images, labels = task["train_images"] - mean, task["train_labels"]
        for part, rows in zip(("train", "test"), character_partition(labels, counts, rng)):
            out[part][0].append(images[rows])
            out[part][1].append(labels[rows])
    return out


def resplit(images, labels, seed, counts=(10, 2), n_outputs=55):
    """One meta-iteration's data: every task's training examples re-split at random per
    character into counts = (10, 2) training and validation examples. Returns the two
    `pad_tasks` triples (train, valid)."""
    rng = np.random.RandomState(seed)
    splits = [character_partition(y, counts, rng) for y in labels]
    return tuple(pad_tasks([x[s[i]] for x, s in zip(images, splits)],
                           [y[s[i]] for y, s in zip(labels, splits)], n_outputs)
                 for i in range(len(counts)))
