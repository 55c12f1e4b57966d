"""Omniglot data choices against the paper's separate-network losses (issue 19, item 5).

The authors' 28x28 images come from Burda et al.'s `chardata.mat`: 15 drawings per
character, downsampled by a routine nobody documented. We make ours from the official
105x105 drawings (data.load_omniglot_105). This module rebuilds the Fig. 9 tasks with other
choices of the 15 drawers and other downsampling filters, so that a sweep of the "separate"
setting (no meta-learning) can show how far those choices move the test loss.

Every filter is separable: an (n_out, n_in) matrix R per axis, image -> R @ image @ R.T.
Pixel j of the input covers [j, j + 1); output pixel i is centred at (i + 0.5) n_in / n_out.
"""
import numpy as np

from .data import OMNIGLOT_ALPHABETS, area_matrix, load_omniglot_105, make_tasks
from .multitask import authors_split, mean_loss, multitask_layout, pad_tasks

N_DRAWERS = 20


# --- resampling kernels, each k(x) with x in output-pixel units (support: |x| < support) --------

def triangle(x):
    """The bilinear kernel, support 1."""
    return np.clip(1.0 - np.abs(x), 0.0, None)


def keys_cubic(x, a=-0.5):
    """Keys' cubic convolution kernel, support 2; a = -0.5 in PIL's BICUBIC and MATLAB's imresize."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x ** 2 + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0.0))


def lanczos3(x):
    """The Lanczos kernel with 3 lobes, support 3 (PIL's LANCZOS)."""
    return np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)


def filter_matrix(n_in, n_out, kernel, support, antialias=True, boundary="renormalize"):
    """(n_out, n_in) weights of resampling by `kernel` (rows sum to 1).

    antialias: when shrinking, stretch the kernel by n_in / n_out (PIL's resize, MATLAB's
    imresize), so that every input pixel contributes; otherwise the kernel is applied at its
    own width (plain interpolation, which skips most input pixels when shrinking 3.75x).
    boundary: "renormalize" drops taps outside the image and rescales the rest (PIL);
    "mirror" folds them back symmetrically, -1 -> 0, n_in -> n_in - 1 (MATLAB's imresize)."""
    if boundary not in ("renormalize", "mirror"):
        raise ValueError(f'boundary must be "renormalize" or "mirror", got {boundary!r}')
    scale = n_in / n_out
    stretch = max(scale, 1.0) if antialias else 1.0
    centres = (np.arange(n_out) + 0.5) * scale
    reach = int(np.ceil(support * stretch)) + 1
    taps = np.arange(-reach, n_in + reach)
    weights = kernel((taps[None, :] + 0.5 - centres[:, None]) / stretch)
    inside = (taps >= 0) & (taps < n_in)
    if boundary == "renormalize":
        weights, source = weights[:, inside], taps[inside]
    else:
        source = np.where(taps < 0, -taps - 1, np.where(taps >= n_in, 2 * n_in - 1 - taps, taps))
    out = np.zeros((n_out, n_in))
    for column, j in enumerate(source):
        out[:, j] += weights[:, column]
    return out / out.sum(axis=1, keepdims=True)


def nearest_matrix(n_in, n_out):
    """(n_out, n_in): output pixel i copies input pixel floor((i + 0.5) n_in / n_out) (PIL's NEAREST)."""
    out = np.zeros((n_out, n_in))
    out[np.arange(n_out), np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(int)] = 1.0
    return out


# name -> (matrix(n_in, n_out), principled?, description)
DOWNSAMPLERS = {
    "area": (area_matrix, True,
             "exact area averaging (data.downsample, what fig8/fig9 use now)"),
    "pil_bilinear": (lambda i, o: filter_matrix(i, o, triangle, 1.0), True,
                     "antialiased bilinear (triangle filter 7.5 px wide): PIL's Image.resize BILINEAR"),
    "pil_lanczos": (lambda i, o: filter_matrix(i, o, lanczos3, 3.0), True,
                    "antialiased Lanczos-3: PIL's LANCZOS (the 28x28 Omniglot of MAML, Finn et al. 2017)"),
    "matlab_bicubic": (lambda i, o: filter_matrix(i, o, keys_cubic, 2.0, boundary="mirror"), True,
                       "antialiased bicubic, mirrored edges: MATLAB's imresize default, our guess at "
                       "how the MATLAB file chardata.mat was made (undocumented)"),
    "bilinear_no_aa": (lambda i, o: filter_matrix(i, o, triangle, 1.0, antialias=False), False,
                       "plain bilinear interpolation, no antialiasing (scipy zoom order 1, cv2 "
                       "INTER_LINEAR): reads 2 of every 3.75 input pixels, aliased"),
    "nearest": (nearest_matrix, False,
                "nearest neighbour (PIL NEAREST): one input pixel of every 14, aliased; thin strokes vanish"),
}


def downsample_with(images, method, size=28):
    """(N, H, W) ink in [0, 1] -> (N, size, size) float64 in [0, 1] by DOWNSAMPLERS[method]."""
    if method not in DOWNSAMPLERS:
        raise ValueError(f"unknown downsampling {method!r}; choose from {sorted(DOWNSAMPLERS)}")
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    matrix = DOWNSAMPLERS[method][0]
    rows, cols = matrix(images.shape[1], size), matrix(images.shape[2], size).T
    out = np.empty((len(images), size, size))
    for i in range(0, len(images), 512):   # chunks bound the float copy of the input
        out[i:i + 512] = rows @ images[i:i + 512].astype(np.float64) @ cols
    return np.clip(out, 0.0, 1.0, out=out)   # cubic and Lanczos lobes over- and undershoot


# --- which 15 of the 20 drawers -----------------------------------------------------------------

def drawer_choice(name, n_train=15):
    """Sorted drawer ids (1..20) that form the 15 examples per character, by name:
    "first" (1..15, what cutting each character's drawings in file order would keep),
    "last" (6..20), "seedS" (15 at random from np.random.RandomState(S): the way
    data.drawer_split picks its test drawers, so "seed0" is what fig9 uses now)."""
    drawers = np.arange(1, N_DRAWERS + 1)
    if not 0 < n_train < N_DRAWERS:
        raise ValueError(f"n_train must be in 1..{N_DRAWERS - 1}, got {n_train}")
    if name == "first":
        return drawers[:n_train]
    if name == "last":
        return drawers[-n_train:]
    if name.startswith("seed") and name[4:].isdigit():
        test = np.random.RandomState(int(name[4:])).choice(drawers, N_DRAWERS - n_train, replace=False)
        return np.setdiff1d(drawers, test)
    raise ValueError(f'drawer choice must be "first", "last" or "seed<S>" (e.g. "seed0"), got {name!r}')


# --- the tasks and the separate networks ---------------------------------------------------------

def load_alphabets_105(alphabets=OMNIGLOT_ALPHABETS, download=True):
    """The arrays of data.load_omniglot_105 (images (N, 105, 105) bool, True = ink) restricted
    to `alphabets`, so that each downsampling only handles the few thousand drawings it needs."""
    data = load_omniglot_105(download)
    names = list(data["alphabet_names"])
    unknown = [a for a in alphabets if a not in names]
    if unknown:
        raise ValueError(f"unknown Omniglot alphabets {unknown}; choose from {names}")
    rows = np.isin(data["alphabet"], [names.index(a) for a in alphabets])
    out = {k: np.array(v[rows]) for k, v in data.items() if k != "alphabet_names"}
    out["alphabet_names"] = np.array(data["alphabet_names"])
    return out


def sweep_tasks(data105, method, train_drawers, alphabets=OMNIGLOT_ALPHABETS):
    """The 10 tasks of data.omniglot_tasks (5 alphabets and their 90-degree rotations), made
    with downsampling `method` and with `train_drawers` as each character's 15 examples
    (`train_*`; the other drawers go to `test_*`, which the separate setting never uses)."""
    data = dict(data105, images=downsample_with(data105["images"], method))
    test_drawers = np.setdiff1d(np.arange(1, N_DRAWERS + 1), train_drawers)
    return make_tasks(data, alphabets, test_drawers)


def train_separate(images, labels, layer_sizes, seed, T, alpha, gamma, log_l2, log_init_scale,
                   n_outputs=55):
    """w_T (D,) in the layout of multitask.multitask_layout: the ten separate tanh networks
    (T = I) after T full-batch steps of SGD with momentum on the sum over tasks of each
    task's mean cross-entropy plus exp(log_l2) |w|^2, from w_0 = exp(log_init_scale) N(0, 1)
    drawn from seed, as multitask.train_shared runs them (v <- gamma v - (1 - gamma) grad,
    w <- w + alpha v), but by hand-written backpropagation task by task, without the padding
    and the autograd tape: 15-20x faster, and the same numbers to rounding
    (tests/test_omniglot_sweep.py). images, labels: lists of per-task (N_i, 784), (N_i,)."""
    n_tasks, n_layers = len(images), len(layer_sizes) - 1
    layout = multitask_layout(layer_sizes, n_tasks)
    w = np.exp(log_init_scale) * np.random.RandomState(seed).randn(layout.size)  # models.init_weights
    blocks = {name: layout.get(w, name).copy() for name in layout.names}
    velocity = {name: np.zeros_like(b) for name, b in blocks.items()}
    targets = [np.eye(n_outputs)[y] for y in labels]
    l2 = np.exp(log_l2)
    for _ in range(T):
        grads = {name: 2 * l2 * b for name, b in blocks.items()}
        for i, (x, target) in enumerate(zip(images, targets)):
            hidden = [x]                               # forward: the input of each layer
            for k in range(1, n_layers + 1):
                out = hidden[-1] @ blocks[f"layer{k}_weights"][i] + blocks[f"layer{k}_biases"][i]
                if k < n_layers:
                    hidden.append(np.tanh(out))
            p = np.exp(out - out.max(axis=1, keepdims=True))
            d_out = (p / p.sum(axis=1, keepdims=True) - target) / len(x)   # d mean CE / d logits
            for k in range(n_layers, 0, -1):           # backward
                grads[f"layer{k}_weights"][i] += hidden[k - 1].T @ d_out
                grads[f"layer{k}_biases"][i] += d_out.sum(axis=0)
                if k > 1:
                    d_out = (d_out @ blocks[f"layer{k}_weights"][i].T) * (1 - hidden[k - 1] ** 2)
        for name in blocks:
            velocity[name] = gamma * velocity[name] - (1 - gamma) * grads[name]
            blocks[name] = blocks[name] + alpha * velocity[name]
    return np.concatenate([blocks[name].ravel() for name in layout.names])


def separate_losses(tasks, split_seed, init_seed, layer_sizes, T, alpha, gamma, log_l2,
                    log_init_scale, n_outputs=55):
    """(train loss, test loss) of fig9's "separate" setting (T = I, no meta-learning): the 15
    examples per character split 12 / 3 by multitask.authors_split(seed=split_seed), ten
    networks trained by train_separate from initial weights drawn from init_seed, and
    multitask.mean_loss on the 12 and on the 3: the mean over tasks of the mean cross-entropy
    per example, in nats, as fig9 and the authors report it."""
    split = authors_split(tasks, seed=split_seed)
    w = train_separate(*split["train"], layer_sizes, init_seed, T, alpha, gamma, log_l2,
                       log_init_scale, n_outputs)
    layout = multitask_layout(layer_sizes, len(tasks))
    return tuple(float(mean_loss(layout, w, pad_tasks(*split[part], n_outputs)))
                 for part in ("train", "test"))


def run_sweep(data105, variants, split_seeds, init_seeds, sizes, characters=None):
    """Rows {"downsampling", "drawers", "drawer_ids", "train_loss", "test_loss"} (the losses:
    lists, one per (split_seed, init_seed) pair) of separate_losses for each variant
    (downsampling name, drawer choice name), BLAS on one thread. sizes: the keyword
    arguments layer_sizes, T, alpha, gamma, log_l2, log_init_scale. characters: keep only
    the first `characters` of each alphabet (smoke scale)."""
    from threadpoolctl import threadpool_limits
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for method, drawers in variants:
            ids = drawer_choice(drawers)
            tasks = sweep_tasks(data105, method, ids)
            if characters is not None:
                for task in tasks:
                    keep = task["train_labels"] < characters
                    for key in ("images", "labels", "drawers"):
                        task[f"train_{key}"] = task[f"train_{key}"][keep]
            losses = [separate_losses(tasks, s, i, **sizes) for s, i in zip(split_seeds, init_seeds)]
            rows.append(dict(downsampling=method, drawers=drawers, drawer_ids=ids.tolist(),
                             train_loss=[l[0] for l in losses], test_loss=[l[1] for l in losses]))
    return rows
