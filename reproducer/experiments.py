"""The MNIST experiments of the paper as small functions the figure notebooks call.

Hyperparameters of the schedule experiment (Figs. 2-5) live in one flat vector
`hypers` (2 T K + K,): log step sizes (T, K), logit momentums (T, K) and log
initialization scales (K,), for the K = 8 weight and bias blocks of the MLP. Every
function takes a `Setting` (network, data and training sizes) and an integer seed that
fixes the initial weights and the minibatches.
"""
import functools
import os
import time
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd import grad, make_vjp, value_and_grad
from autograd.tracer import getval
from joblib import Parallel, delayed

from .data import mnist_splits, one_hot
from .exact import ExactArithmeticError
from .meta import meta_optimize
from .models import (authors_init, batch_slice, cross_entropy, error_rate, init_weights, minibatch,
                     mlp_layout, mlp_predict)
from .adaptive import adam
from .sgd import sgd_momentum, sgd_momentum_unrolled


@dataclass(frozen=True)
class Setting:
    """An MLP trained on n_train MNIST examples for T steps of batch_size.

    The authors' setting (HIPS/hypergrad, experiments/Feb_3_training_schedules) is
    split="authors", center=True, n_valid=10000, draw="authors": consecutive slices of the
    official training images, mean-centred pixels, minibatches drawn with replacement from
    their seeds. The defaults are this repository's older choice (random subsets, raw
    pixels, epochs of a permutation), kept for the notebooks that still use it."""
    layer_sizes: tuple = (784, 50, 50, 50, 10)
    n_train: int = 10000
    batch_size: int = 200
    T: int = 100
    n_test: int = 10000
    data_seed: int = 0
    optimizer: str = "sgd"      # or "adam": then the "momentums" are Adam's beta1
    beta2: float = 0.999        # Adam's second-moment decay, fixed
    eps: float = 1e-8           # Adam's epsilon
    n_valid: int = 0
    split: str = "random"       # mnist_splits' order: "random" or "authors"
    center: bool = False        # subtract the mean training image (the authors' loader does)
    draw: str = "epochs"        # minibatches and initial noise: "epochs" or "authors"

    @property
    def layout(self):
        return mlp_layout(list(self.layer_sizes))


@functools.lru_cache(maxsize=4)
def _mnist(n_train, n_valid, n_test, data_seed, split, center):
    d = mnist_splits(n_train, n_valid, n_test, seed=data_seed, order=split, center=center)
    return {name: (part.images, one_hot(part.labels), part.labels) for name, part in d.items()}


def mnist_arrays(setting, part="train"):
    """(images (n, 784), one-hot targets (n, 10), labels (n,)) of part "train", "valid"
    or "test" of the setting's MNIST split."""
    data = _mnist(setting.n_train, setting.n_valid, setting.n_test, setting.data_seed,
                  setting.split, setting.center)
    if part not in data or len(data[part][2]) == 0:
        raise ValueError(f"the setting has no {part!r} examples (n_valid = {setting.n_valid}).")
    return data[part]


def training_loss(setting, seed):
    """loss(w, theta, t): mean cross-entropy on step t's minibatch (drawn from seed)."""
    images, targets, _ = mnist_arrays(setting)
    layout = setting.layout

    def loss(w, theta, t):
        idx = minibatch(t, setting.n_train, setting.batch_size, seed, draw=setting.draw)
        return cross_entropy(mlp_predict(layout, w, images[idx]), targets[idx])
    return loss


def dataset_loss(setting, w, part="train"):
    """Mean cross-entropy of weights w (D,) on all examples of part (train/valid/test).
    The authors' loss adds sum(exp(log_L2) w^2) with log_L2 = -100: below 1e-40, so left out."""
    images, targets, _ = mnist_arrays(setting, part)
    return cross_entropy(mlp_predict(setting.layout, w, images), targets)


def full_training_loss(setting, w):
    """Mean cross-entropy of weights w (D,) on all n_train training examples."""
    return dataset_loss(setting, w, "train")


def test_error(setting, w):
    """Error rate of weights w (D,) on the n_test examples of the MNIST test split."""
    images, _, labels = mnist_arrays(setting, "test")
    return error_rate(mlp_predict(setting.layout, w, images), labels)


# --- the hyperparameter vector ------------------------------------------------------------

def initial_hypers(setting, log_alpha=-1.0, gamma=0.5, log_scale=-3.0):
    """Constant schedules and scales as one vector (2 T K + K,)."""
    T, K = setting.T, len(setting.layout)
    logit = np.log(gamma / (1.0 - gamma))
    return np.concatenate([np.full(T * K, log_alpha), np.full(T * K, logit),
                           np.full(K, log_scale)])


def unpack(setting, hypers):
    """hypers (2 T K + K,) -> alphas (T, K), gammas (T, K) in (0, 1), log_scales (K,)."""
    T, K = setting.T, len(setting.layout)
    alphas = anp.exp(anp.reshape(hypers[:T * K], (T, K)))
    gammas = 1.0 / (1.0 + anp.exp(-anp.reshape(hypers[T * K:2 * T * K], (T, K))))
    return alphas, gammas, hypers[2 * T * K:]


def train(setting, hypers, seed, callback=None, stats=None):
    """w_T (D,): T steps of SGD with momentum (or Adam, if setting.optimizer == "adam")
    from init_weights(log_scales, seed); callback and stats as for sgd_momentum."""
    alphas, gammas, log_scales = unpack(setting, hypers)
    w0 = init_weights(setting.layout, log_scales, seed, draw=setting.draw)
    loss = training_loss(setting, seed)
    if setting.optimizer == "adam":
        beta2s = np.full(np.shape(gammas), setting.beta2)
        return adam(loss, w0, alphas, gammas, beta2s, setting.eps, np.zeros(1),
                    callback=callback, stats=stats, blocks=setting.layout)
    return sgd_momentum(loss, w0, alphas, gammas, np.zeros(1), callback=callback,
                        stats=stats, blocks=setting.layout)


def plain_train(setting, hypers, seed):
    """w_T (D,) of the same run as train (same w0, minibatches and schedules) by plain float64
    SGD with momentum (sgd_momentum_unrolled on arrays): the training a hypergradient's cost
    is measured against. SGD only."""
    if setting.optimizer != "sgd":
        raise ValueError(f"plain_train runs SGD with momentum, not {setting.optimizer!r}.")
    alphas, gammas, log_scales = unpack(setting, np.asarray(hypers, dtype=float))
    w0 = init_weights(setting.layout, log_scales, seed, draw=setting.draw)
    return sgd_momentum_unrolled(training_loss(setting, seed), w0, alphas, gammas, np.zeros(1),
                                 blocks=setting.layout)


def final_loss(hypers, seed, setting):
    """The meta-objective: training loss on all training examples after training. Scalar,
    differentiable in hypers; the signature meta_optimize wants (with setting bound)."""
    return full_training_loss(setting, train(setting, hypers, seed))


def hypergradient(setting, hypers, seed):
    """(final loss, d loss / d hypers (2 T K + K,)), or (nan, nan array) if training
    left the range of exact arithmetic (it diverged)."""
    try:
        loss, d_hypers = value_and_grad(final_loss)(hypers, seed, setting)
    except ExactArithmeticError:
        return np.nan, np.full(np.shape(hypers), np.nan)
    return float(loss), d_hypers


def hypergradients(setting, hypers, seeds, n_jobs=2):
    """Hypergradients at many seeds in parallel: (losses (S,), d_hypers (S, 2 T K + K))."""
    results = Parallel(n_jobs=n_jobs)(delayed(hypergradient)(setting, hypers, s) for s in seeds)
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])


def learning_curve(setting, hypers, seed):
    """Training loss on all training examples at w_0, ..., w_T: (T + 1,)."""
    losses = []
    w_T = train(setting, hypers, seed,
                callback=lambda w, v, g, t: losses.append(float(full_training_loss(setting, w))))
    return np.array(losses + [float(full_training_loss(setting, w_T))])


def evaluate(setting, hypers, seed):
    """(final training loss, test error) of one training run; nan, nan if it diverged."""
    try:
        w_T = train(setting, hypers, seed)
    except ExactArithmeticError:
        return np.nan, np.nan
    return float(full_training_loss(setting, w_T)), test_error(setting, w_T)


def evaluate_many(setting, hypers_list, seeds, n_jobs=2):
    """evaluate for every (hypers, seed) pair: (len(hypers_list), len(seeds), 2)."""
    jobs = [delayed(evaluate)(setting, h, s) for h in hypers_list for s in seeds]
    results = Parallel(n_jobs=n_jobs)(jobs)
    return np.array(results).reshape(len(hypers_list), len(seeds), 2)


def fixed_schedule_search(setting, log_alphas, gammas, seeds, log_scale=-3.0, n_jobs=2):
    """The gradient-free baseline: one step size and one momentum for all steps and
    layers, chosen on a grid. Returns final training losses (A, G, S) (nan = diverged)."""
    grid = [initial_hypers(setting, a, g, log_scale) for a in log_alphas for g in gammas]
    losses = evaluate_many(setting, grid, seeds, n_jobs)[..., 0]
    return losses.reshape(len(log_alphas), len(gammas), len(seeds))


def meta_learn(setting, hypers0, num_iters, step_size, method="hypergrad_adam", seed=0,
               progress=True, curves=True):
    """Meta-optimize the schedules and scales on the final training loss, as the authors'
    experiment does (meta-iteration i trains from seed + i), and record what their Fig. 3
    shows. Returns (hypers, record): meta_optimize's record plus, one row per meta-iteration,
    "learning_curves" (M, T + 1), the training loss on all training examples at w_0..w_T;
    "train_loss", "valid_loss", "test_loss", "test_error" (M,) of that iteration's w_T.
    curves=False skips the per-step losses (they cost ~2x the training; the rows hold only
    the final loss)."""
    rows, finals = [], []

    def objective(hypers, s):
        losses = []
        w_T = train(setting, hypers, s, callback=(lambda w, v, g, t: losses.append(
            float(full_training_loss(setting, w)))) if curves else None)
        loss = full_training_loss(setting, w_T)
        rows.append(losses + [float(getval(loss))])
        finals.append(np.array(getval(w_T)))
        return loss

    hypers, record = meta_optimize(objective, hypers0, num_iters, step_size, method=method,
                                   seed=seed, progress=progress)
    n = len(record["loss"])
    record["learning_curves"] = np.array(rows[:n]) if curves else np.array(rows[:n])[:, -1:]
    for part in ("train", "valid", "test"):
        record[f"{part}_loss"] = [float(dataset_loss(setting, w, part)) for w in finals[:n]]
    record["test_error"] = [test_error(setting, w) for w in finals[:n]]
    return hypers, record


def schedule_roughness(log_values):
    """Mean |change| of a log schedule from one step to the next: log_values (T, K) -> (K,)."""
    return np.mean(np.abs(np.diff(log_values, axis=0)), axis=0)


# The authors' bounds for the fixed-schedule baseline (their Whetlab experiment,
# experiments/Feb_2_plot_metagradient/3_whetlab): log step size, logit momentum, log scale.
BASELINE_BOUNDS = {"log_alpha": (-3.0, 2.0), "logit_gamma": (np.log(0.1 / 0.9), np.log(999.0)),
                   "log_scale": (-5.0, 1.0)}


def bayes_opt_baseline(setting, num_runs, seed=0, n_random=5, bounds=BASELINE_BOUNDS,
                       cap=2.5, progress=False):
    """The gradient-free baseline: one step size, momentum and initialization scale for all
    steps and blocks, chosen by Bayesian optimization (bayesian-optimization: a Gaussian
    process with expected improvement) on the final training loss; run i trains from seed + i,
    as the authors' Whetlab search did. The first n_random runs are uniform random. Losses
    above cap (diverged runs are nan) count as cap for the Gaussian process.
    Returns (best (log_alpha, gamma, log_scale), record with "params" (num_runs, 3) in
    the bounds' order and "loss" (num_runs,) as trained, nan = diverged)."""
    from bayes_opt import BayesianOptimization
    from bayes_opt.acquisition import ExpectedImprovement
    names = list(bounds)
    optimizer = BayesianOptimization(None, dict(bounds), ExpectedImprovement(xi=0.01),
                                     random_state=seed, verbose=0, allow_duplicate_points=True)
    rs = np.random.RandomState(seed)
    params, losses = [], []
    for i in range(num_runs):
        if i < n_random:
            point = {n: rs.uniform(*bounds[n]) for n in names}
        else:
            point = optimizer.suggest()
        log_alpha, logit_gamma, log_scale = (float(point[n]) for n in names)
        gamma = 1.0 / (1.0 + np.exp(-logit_gamma))
        loss, _ = evaluate(setting, initial_hypers(setting, log_alpha, gamma, log_scale), seed + i)
        optimizer.register(params=point, target=-min(np.nan_to_num(loss, nan=cap), cap))
        params.append([log_alpha, logit_gamma, log_scale])
        losses.append(loss)
        if progress:
            print(f"run {i}: loss {loss:.4f} at {params[-1]}")
    params, losses = np.array(params), np.array(losses)
    best = params[np.nanargmin(losses)]
    return (best[0], 1.0 / (1.0 + np.exp(-best[1])), best[2]), dict(params=params, loss=losses)


# The authors' Whetlab optimum, "Based on 100 iterations of whetlab" (HIPS/hypergrad
# experiments/Feb_3_training_schedules/7_adam_50_whetlab_init/experiment.py): log step size
# 0.887 (2.43), logit momentum 0.403 (0.60), log scale -1.63 (0.196).
AUTHORS_BASELINE = (0.887, 1.0 / (1.0 + np.exp(-0.403)), -1.63)


def rescore_candidates(setting, search, seeds, top=5, n_jobs=2):
    """A search's `top` candidates (lowest single-run losses) trained again on fresh seeds;
    the best by mean loss over them (a single run's loss rewards a lucky seed; a run that
    diverges counts as infinite). search: bayes_opt_baseline's record. Returns (best
    (log_alpha, gamma, log_scale), dict(params (top, 3) as in search, loss (top, S), mean (top,),
    seeds, index of each candidate in the search))."""
    if top < 1 or len(seeds) < 1:
        raise ValueError(f"rescore_candidates needs top >= 1 and at least one seed (got top = "
                         f"{top}, {len(seeds)} seeds).")
    order = np.argsort(np.where(np.isnan(search["loss"]), np.inf, search["loss"]), kind="stable")[:top]
    params = np.asarray(search["params"])[order]
    grid = [initial_hypers(setting, a, 1.0 / (1.0 + np.exp(-g)), s) for a, g, s in params]
    losses = evaluate_many(setting, grid, seeds, n_jobs)[..., 0]
    mean = np.mean(np.where(np.isnan(losses), np.inf, losses), axis=1)
    b = int(np.argmin(mean))
    best = (params[b, 0], 1.0 / (1.0 + np.exp(-params[b, 1])), params[b, 2])
    return best, dict(params=params, loss=losses, mean=mean, seeds=list(seeds), index=order)


def hypergradient_cost(setting, hypers, seed, repeats=3):
    """Wall-clock seconds of one plain float64 training run (plain_train, with its final
    training loss), of the reversible forward pass (train, with the final loss), of one whole
    hypergradient, of the reverse pass alone (the VJP of a forward pass already taken), and
    of what the reverse pass repeats T times: the minibatch gradient, and the gradient with a
    Hessian-vector product (as the reverse pass computes them). All on the same T, minibatches
    and initial weights. Each is the best of `repeats`, taken in turns (so a busy spell on a
    shared machine slows all alike) with BLAS on one thread (idle BLAS threads spin when cores
    are taken). Keys: plain_seconds, forward_seconds, hypergradient_seconds, reverse_seconds,
    gradients_seconds, gradient_and_hvp_seconds; derived: ratio (hypergradient / reversible
    forward), plain_ratio (hypergradient / plain), reverse_plain_ratio (reverse alone / plain),
    hvp_seconds (the HVPs' share), c_hvp (one HVP in gradients: hvp / gradients),
    exact_seconds = reverse - T (gradient + HVP), the reverse pass's fixed-point arithmetic and
    buffer bookkeeping; load_average (1 min, before, after)."""
    from threadpoolctl import threadpool_limits
    loss = training_loss(setting, seed)
    _, _, log_scales = unpack(setting, hypers)
    w = init_weights(setting.layout, log_scales, seed, draw=setting.draw)
    theta, u = np.zeros(1), np.ones(w.size) * 1e-3
    grad_loss = grad(loss)

    def timed(task):
        def run():
            start = time.perf_counter()
            task()
            return time.perf_counter() - start
        return run

    def gradients():
        for t in range(setting.T):
            grad_loss(w, theta, t)

    def gradients_and_hvps():
        for t in range(setting.T):
            vjp, _ = make_vjp(lambda w_: grad_loss(w_, theta, t))(w)
            vjp(u)

    def reverse_alone():
        vjp, _ = make_vjp(final_loss)(hypers, seed, setting)     # the forward pass, not timed
        start = time.perf_counter()
        vjp(1.0)
        return time.perf_counter() - start

    tasks = {"plain_seconds": timed(lambda: full_training_loss(setting, plain_train(setting, hypers, seed))),
             "forward_seconds": timed(lambda: final_loss(hypers, seed, setting)),
             "hypergradient_seconds": timed(lambda: value_and_grad(final_loss)(hypers, seed, setting)),
             "reverse_seconds": reverse_alone,
             "gradients_seconds": timed(gradients), "gradient_and_hvp_seconds": timed(gradients_and_hvps)}
    out = {name: np.inf for name in tasks}
    before = os.getloadavg()[0]
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(repeats):
            for name, task in tasks.items():
                out[name] = min(out[name], task())
    out["load_average"] = [before, os.getloadavg()[0]]
    out["repeats"] = repeats
    out["ratio"] = out["hypergradient_seconds"] / out["forward_seconds"]
    out["plain_ratio"] = out["hypergradient_seconds"] / out["plain_seconds"]
    out["reverse_plain_ratio"] = out["reverse_seconds"] / out["plain_seconds"]
    out["hvp_seconds"] = out["gradient_and_hvp_seconds"] - out["gradients_seconds"]
    out["c_hvp"] = out["hvp_seconds"] / out["gradients_seconds"]
    out["exact_seconds"] = out["reverse_seconds"] - out["gradient_and_hvp_seconds"]
    return out


def fan_in_log_scales(setting):
    """The 1/sqrt(fan-in) heuristic as log scales, one per block (K,)."""
    return np.array([-0.5 * np.log(m) for m in setting.layer_sizes[:-1] for _ in range(2)])


def step_size_sweep(setting, log_alphas, seed, gamma=0.9, log_scale=-2.0, n_jobs=2):
    """Fig. 10: one fixed step size exp(log_alpha) for all steps and layers. Returns final
    training losses (A,) and their derivatives d loss / d log_alpha (A,); nan = diverged."""
    T, K = setting.T, len(setting.layout)
    hypers = [initial_hypers(setting, a, gamma, log_scale) for a in log_alphas]
    results = Parallel(n_jobs=n_jobs)(delayed(hypergradient)(setting, h, seed) for h in hypers)
    losses = np.array([loss for loss, _ in results])
    d_log_alphas = np.array([np.sum(d[:T * K]) for _, d in results])   # chain rule: all alphas move
    return losses, d_log_alphas


def first_mnist_images(n_train, center=False):
    """The first n_train official training images (n_train, 784) and one-hot labels, as the
    authors' load_data() gives them (raw pixels in [0, 1] unless center)."""
    return _mnist(n_train, 0, 0, 0, "authors", center)["train"][:2]


def chaos_point(log_alpha, layer_sizes=(784, 200, 50, 10), n_train=1000, batch_size=250, T=50,
                gamma=0.9, log_scale=-2.0, seed=0):
    """Fig. 10 as the authors ran it (experiments/Jan_14_learning_rate_wiggliness/3): T steps
    of one step size exp(log_alpha) and momentum gamma on the first n_train raw MNIST
    images in consecutive minibatches, from authors_init(log_scale, seed), no L2.
    Returns (final training loss on all n_train, d loss / d log_alpha); nan, nan if the run
    left the range of exact arithmetic."""
    images, targets = first_mnist_images(n_train)
    layout = mlp_layout(list(layer_sizes))
    w0 = authors_init(layout.size, log_scale, seed)

    def loss(w, theta, t):
        idx = batch_slice(t, n_train, batch_size)
        return cross_entropy(mlp_predict(layout, w, images[idx]), targets[idx])

    def final(log_a):
        w_T = sgd_momentum(loss, w0, anp.exp(log_a) * np.ones(T), np.full(T, gamma), np.zeros(1))
        return cross_entropy(mlp_predict(layout, w_T, images), targets)
    try:
        value, slope = value_and_grad(final)(float(log_alpha))
    except ExactArithmeticError:
        return np.nan, np.nan
    return float(value), float(slope)


def chaos_sweep(log_alphas, n_jobs=2, **setting):
    """chaos_point at every log step size, in parallel: (losses (A,), slopes (A,))."""
    results = Parallel(n_jobs=n_jobs)(delayed(chaos_point)(a, **setting) for a in log_alphas)
    return np.array([r[0] for r in results]), np.array([r[1] for r in results])


# --- Fig. 1: a toy problem with two weights -------------------------------------------------

def toy_surface(w):
    """A rippled bowl over two weights: w (2, ...) -> loss (...)."""
    x, y = w[0], w[1]
    return 0.1 * (x ** 2 + 2 * y ** 2) + 0.6 * anp.sin(1.5 * x) * anp.cos(1.2 * y)


def rosenbrock_surface(w):
    """The authors' Fig. 1 surface (experiments/Jan_25_Figure_1/2): a squashed, tilted
    Rosenbrock valley 800 sigmoid(r / 500), r = 100 (w2 - w1^2)^2 + (1 - w1)^2 + 200 w1.
    w (2, ...) -> loss (...). Every operation acts on (1, ...) arrays, never on numpy
    scalars: scalar and array arithmetic can round differently in the last bit between a
    plain and an autograd-traced evaluation, and exact reversal needs the reverse pass to
    see the forward pass's gradient bit for bit (with scalars it failed its check)."""
    w1, w2 = w[:1], w[1:]
    r = 100.0 * (w2 - w1 ** 2) ** 2 + (1 - w1) ** 2 + 200.0 * w1
    return anp.sum(800.0 / (1.0 + anp.exp(-r / 500.0)), axis=0)


def toy_training(hypers, w0, callback=None, surface=toy_surface):
    """w_T (2,) after T = len(hypers) // 2 steps on surface; hypers = [log step sizes
    (T,), logit momentums (T,)]."""
    T = len(hypers) // 2
    return sgd_momentum(lambda w, theta, t: surface(w), w0, anp.exp(hypers[:T]),
                        1.0 / (1.0 + anp.exp(-hypers[T:])), np.zeros(1), callback=callback)


def toy_path(hypers, w0, surface=toy_surface):
    """The weights w_0, ..., w_T of one toy training run: (T + 1, 2)."""
    path = []
    w_T = toy_training(hypers, w0, lambda w, v, g, t: path.append(np.array(w)), surface)
    return np.array(path + [w_T])
