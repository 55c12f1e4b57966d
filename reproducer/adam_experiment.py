"""Does hypergradient descent tune Adam's schedules? Fig. 2's experiment with Adam inside.

Our extension (issue 20), not a claim of the paper. The schedules (log step sizes and logit
beta1s, shape (T, K) each, in `experiments`' hyperparameter layout) are written as a few free
numbers z: one pair for the whole run ("constant"), one per block ("per_block"), one per
block and phase of training ("phases"), or one per block and step ("per_step"). Every entry
of the schedules takes one z (`schedule_groups`), so d loss / d z is the sum of the
hypergradient over the entries that share it (`project`). The initialization scales stay
fixed: only the schedules are tuned, here and in the constant baseline.

A meta-iteration averages the hypergradients of several seeds before one step of the
meta-optimizer, so its noise is smaller than one seed's. Everything is judged on held-out
seeds against the best constant schedule found by a grid with as many training runs as the
meta-learning cost.
"""
import numpy as np

from .experiments import evaluate_many, hypergradients
from .meta import OPTIMIZERS

PARAMETRIZATIONS = ("constant", "per_block", "phases", "per_step")


def schedule_groups(T, K, kind, n_phases=4):
    """Which free number each schedule entry takes: (groups (2 T K,) ints into z, len(z)).

    The first T K entries are the log step sizes (T, K) row-major, the next T K the logit
    beta1s; z holds the log step sizes' numbers first, then the beta1s'. Phases split the
    T steps into n_phases runs of consecutive steps (as equal as they can be)."""
    t, k = np.arange(T)[:, None], np.arange(K)[None, :]
    if kind == "constant":
        g = np.zeros((T, K), dtype=int)
    elif kind == "per_block":
        g = np.broadcast_to(k, (T, K))
    elif kind == "phases":
        if not 1 <= n_phases <= T:
            raise ValueError(f"n_phases must be between 1 and T = {T}, got {n_phases}.")
        g = (t * n_phases // T) * K + k
    elif kind == "per_step":
        g = t * K + k
    else:
        raise ValueError(f"kind must be one of {PARAMETRIZATIONS}, got {kind!r}.")
    n = int(g.max()) + 1
    return np.concatenate([g.ravel(), n + g.ravel()]), 2 * n


def start_z(n, log_alpha, beta1):
    """A constant start: z (n,) with log step size log_alpha and beta1 everywhere."""
    return np.concatenate([np.full(n // 2, float(log_alpha)),
                           np.full(n // 2, np.log(beta1 / (1.0 - beta1)))])


def expand(z, groups, log_scales):
    """z (n,) -> the full hyperparameter vector (2 T K + K,) of `experiments`."""
    return np.concatenate([np.asarray(z, dtype=float)[groups], log_scales])


def project(d_hypers, groups, n):
    """Full hypergradients (..., 2 T K + K) -> d loss / d z (..., n): sums over each group."""
    d = np.asarray(d_hypers, dtype=float)[..., :len(groups)]
    flat = d.reshape(-1, len(groups))
    out = np.array([np.bincount(groups, weights=row, minlength=n) for row in flat])
    return out.reshape(d.shape[:-1] + (n,))


def cosine(a, b):
    """Cosine of the angle between two vectors (nan if either is zero or not finite)."""
    a, b = np.ravel(a), np.ravel(b)
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return float(np.dot(a, b) / norm) if norm > 0 and np.isfinite(norm) else np.nan


def mean_pairwise_cosine(rows):
    """Mean cosine over all pairs of rows (S, n) (nan rows skipped; nan if fewer than 2)."""
    rows = [r for r in np.asarray(rows, dtype=float) if np.all(np.isfinite(r))]
    pairs = [cosine(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    return float(np.nanmean(pairs)) if pairs else np.nan


def signal_to_noise(d):
    """Per-seed values d (S, ...) -> (mean, standard error of the mean, mean / error) over
    seeds, nan seeds (diverged runs) left out."""
    d = np.asarray(d, dtype=float)
    ok = np.all(np.isfinite(d.reshape(len(d), -1)), axis=1)
    d = d[ok]
    mean = d.mean(axis=0)
    sem = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.full(mean.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean, sem, mean / sem


def normalized_gradient_descent(grad, x, callback=None, num_iters=10, step_size=0.1):
    """Gradient descent x <- x - eta g with eta fixed at the first iteration so that its
    largest coordinate moves by step_size: later steps shrink with the gradient, and a
    coordinate moves in proportion to its (averaged) hypergradient, noise or signal."""
    x = np.array(x, dtype=float)
    eta = None
    for i in range(num_iters):
        g = grad(x, i)
        if callback:
            callback(x, i, g)
        if eta is None:
            top = np.max(np.abs(g))
            eta = step_size / top if top > 0 else 0.0
        x = x - eta * g
    return x


META_OPTIMIZERS = {"hypergrad_adam": OPTIMIZERS["hypergrad_adam"],
                   "gradient_descent": normalized_gradient_descent}


def cached_hypergradients(setting, hypers, seeds, n_jobs=2, cache=None):
    """experiments.hypergradients, remembering each (hypers, seed) in the dict cache (if
    given): runs that start from the same point share their first meta-iteration."""
    if cache is None:
        return hypergradients(setting, hypers, seeds, n_jobs)
    key = np.asarray(hypers, dtype=float).tobytes()
    missing = [s for s in seeds if (key, s) not in cache]
    if missing:
        losses, d = hypergradients(setting, hypers, missing, n_jobs)
        cache.update({(key, s): (l, g) for s, l, g in zip(missing, losses, d)})
    return (np.array([cache[key, s][0] for s in seeds]),
            np.array([cache[key, s][1] for s in seeds]))


def meta_learn(setting, z0, groups, log_scales, num_iters, step_size, seeds_per_iter=1,
               seed=0, method="hypergrad_adam", n_jobs=2, cache=None, progress=False):
    """Meta-optimize z on the final training loss; meta-iteration i averages the
    hypergradients of seeds seed + i S, ..., seed + i S + S - 1 (S = seeds_per_iter; diverged
    seeds are left out of the average). method: "hypergrad_adam" (the authors' meta-optimizer)
    or "gradient_descent" (normalized_gradient_descent).
    Returns (z, record): "z" (M, n) before each update, "loss" (M, S) per seed, "grad" (M, n)
    the averaged meta-gradient, "grad_cosine" (M,) its cosine with the previous one (nan at
    the first), "seed_cosine" (M,) the mean cosine between that iteration's seeds'
    meta-gradients, "hypergradients" (how many the run costs; a cache, as for
    cached_hypergradients, may have held some of them already)."""
    if method not in META_OPTIMIZERS:
        raise ValueError(f"method must be one of {sorted(META_OPTIMIZERS)}, got {method!r}.")
    n = len(z0)
    record = {"z": [], "loss": [], "grad": [], "grad_cosine": [], "seed_cosine": []}

    def gradient(z, i):
        seeds = [seed + i * seeds_per_iter + j for j in range(seeds_per_iter)]
        losses, d_hypers = cached_hypergradients(setting, expand(z, groups, log_scales), seeds,
                                                 n_jobs, cache)
        d_z = project(d_hypers, groups, n)                      # (S, n), nan rows = diverged
        ok = np.all(np.isfinite(d_z), axis=1)
        if not ok.any():
            raise FloatingPointError(
                f"every seed of meta-iteration {i} diverged (seeds {seeds}): the schedules "
                "have left the stable region; use a smaller meta step size.")
        g = d_z[ok].mean(axis=0)
        record["grad_cosine"].append(cosine(record["grad"][-1], g) if record["grad"] else np.nan)
        record["z"].append(np.array(z, dtype=float))
        record["loss"].append(losses)
        record["grad"].append(g)
        record["seed_cosine"].append(mean_pairwise_cosine(d_z))
        if progress:
            print(f"  meta-iteration {i}: loss {np.nanmean(losses):.4f}, |g| "
                  f"{np.linalg.norm(g):.3g}, cosine with previous {record['grad_cosine'][-1]:.2f}",
                  flush=True)
        return g

    z = META_OPTIMIZERS[method](gradient, np.array(z0, dtype=float), None,
                                num_iters=num_iters, step_size=step_size)
    record = {k: np.array(v) for k, v in record.items()}
    record["hypergradients"] = num_iters * seeds_per_iter
    return z, record


def constant_search(setting, log_alphas, beta1s, seeds, log_scales, n_jobs=2):
    """The gradient-free baseline: one step size and one beta1 for every step and block,
    each pair trained from every seed. Returns final training losses (A, B, S), nan =
    diverged, and the best pair (log_alpha, beta1) by the mean over seeds."""
    groups, n = schedule_groups(setting.T, len(setting.layout), "constant")
    grid = [expand(start_z(n, a, b), groups, log_scales) for a in log_alphas for b in beta1s]
    losses = evaluate_many(setting, grid, seeds, n_jobs)[..., 0]
    losses = losses.reshape(len(log_alphas), len(beta1s), len(seeds))
    with np.errstate(invalid="ignore"):
        mean = np.where(np.all(np.isfinite(losses), axis=-1), losses.mean(axis=-1), np.inf)
    a, b = np.unravel_index(np.argmin(mean), mean.shape)
    return losses, (float(log_alphas[a]), float(beta1s[b]))


def held_out(setting, hypers_by_name, seeds, n_jobs=2):
    """Final training loss and test error of each named hyperparameter vector on the same
    held-out seeds: {name: {"train_loss": (S,), "test_error": (S,), "mean", "std", "sem",
    "test_error_mean"}} (std and sem over seeds, ddof 1; nan seeds = diverged, left out)."""
    names = list(hypers_by_name)
    runs = evaluate_many(setting, [hypers_by_name[k] for k in names], seeds, n_jobs)
    out = {}
    for name, r in zip(names, runs):
        loss = r[:, 0]
        ok = loss[np.isfinite(loss)]
        std = float(np.std(ok, ddof=1)) if len(ok) > 1 else np.nan
        out[name] = dict(train_loss=loss, test_error=r[:, 1], mean=float(np.mean(ok)) if len(ok) else np.nan,
                         std=std, sem=std / np.sqrt(len(ok)) if len(ok) > 1 else np.nan,
                         test_error_mean=float(np.nanmean(r[:, 1])), diverged=int(np.sum(~np.isfinite(loss))))
    return out


def judge(held, learned_names, constant_name="best_constant", meta_objective=None):
    """The verdict of the comparison on held-out seeds: does the learned schedule beat the
    best constant one by more than the held-out spread (the larger standard deviation over
    seeds of the two)? The learned schedule judged is the one with the lowest
    meta_objective[name] (its final training loss on its own meta-learning seeds), so the
    held-out seeds that judge it do not also choose it; without meta_objective, the best on
    the held-out seeds (which favours learning). Returns a dict with "best_learned",
    "margin" (constant mean - learned mean, > 0 = learned better), "spread", "paired_sem"
    (of the per-seed differences), "supports"."""
    choose = meta_objective.get if meta_objective else (lambda k: held[k]["mean"])
    best = min(learned_names, key=choose)
    learned, constant = held[best], held[constant_name]
    margin = constant["mean"] - learned["mean"]
    spread = max(constant["std"], learned["std"])
    diff = np.asarray(constant["train_loss"]) - np.asarray(learned["train_loss"])
    diff = diff[np.isfinite(diff)]
    paired_sem = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else np.nan
    return dict(best_learned=best, margin=float(margin), spread=float(spread),
                paired_sem=paired_sem, supports=bool(margin > spread))


def frozen_weights(setting, hypers, seed):
    """The exact Adam run against plain float64 Adam from the same start: {"frozen": weights
    the exact run left at w0 that float64 Adam moved, "max_difference": max |w_T - w_T'|}.
    Exact Adam once froze weights whose first gradient was exactly zero (issue 18)."""
    from .adaptive import adam_unrolled
    from .experiments import train, training_loss, unpack
    from .models import init_weights
    alphas, beta1s, log_scales = unpack(setting, hypers)
    w0 = init_weights(setting.layout, log_scales, seed, draw=setting.draw)
    exact_w = train(setting, hypers, seed)
    float_w = adam_unrolled(training_loss(setting, seed), w0, alphas, beta1s,
                            np.full(np.shape(beta1s), setting.beta2), setting.eps, np.zeros(1),
                            blocks=setting.layout)
    frozen = np.sum((exact_w == w0) & (float_w != w0))
    return dict(frozen=int(frozen), max_difference=float(np.max(np.abs(exact_w - float_w))))
