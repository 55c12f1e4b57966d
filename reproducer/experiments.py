"""The MNIST experiments of the paper as small functions the figure notebooks call.

Hyperparameters of the schedule experiment (Figs. 2-5) live in one flat vector
`hypers` (2 T K + K,): log step sizes (T, K), logit momentums (T, K) and log
initialization scales (K,), for the K = 8 weight and bias blocks of the MLP. Every
function takes a `Setting` (network, data and training sizes) and an integer seed that
fixes the initial weights and the minibatch order.
"""
import functools
from dataclasses import dataclass

import autograd.numpy as anp
import numpy as np
from autograd import value_and_grad
from joblib import Parallel, delayed

from .data import mnist_splits, one_hot
from .exact import ExactArithmeticError
from .models import (authors_init, batch_slice, cross_entropy, error_rate, init_weights, minibatch,
                     mlp_layout, mlp_predict)
from .adaptive import adam
from .sgd import sgd_momentum


@dataclass(frozen=True)
class Setting:
    """An MLP trained on the first n_train MNIST examples for T steps of batch_size."""
    layer_sizes: tuple = (784, 50, 50, 50, 10)
    n_train: int = 10000
    batch_size: int = 200
    T: int = 100
    n_test: int = 10000
    data_seed: int = 0
    optimizer: str = "sgd"      # or "adam": then the "momentums" are Adam's beta1
    beta2: float = 0.999        # Adam's second-moment decay, fixed
    eps: float = 1e-8           # Adam's epsilon

    @property
    def layout(self):
        return mlp_layout(list(self.layer_sizes))


@functools.lru_cache(maxsize=4)
def mnist_arrays(n_train, n_test, data_seed=0):
    """(train images (n_train, 784), train one-hot (n_train, 10), test images, test labels)."""
    d = mnist_splits(n_train, 0, n_test, seed=data_seed)
    return d["train"].images, one_hot(d["train"].labels), d["test"].images, d["test"].labels


def training_loss(setting, seed):
    """loss(w, theta, t): mean cross-entropy on step t's minibatch (order fixed by seed)."""
    images, targets = mnist_arrays(setting.n_train, setting.n_test, setting.data_seed)[:2]
    layout = setting.layout

    def loss(w, theta, t):
        idx = minibatch(t, setting.n_train, setting.batch_size, seed)
        return cross_entropy(mlp_predict(layout, w, images[idx]), targets[idx])
    return loss


def full_training_loss(setting, w):
    """Mean cross-entropy of weights w (D,) on all n_train training examples."""
    images, targets = mnist_arrays(setting.n_train, setting.n_test, setting.data_seed)[:2]
    return cross_entropy(mlp_predict(setting.layout, w, images), targets)


def test_error(setting, w):
    """Error rate of weights w (D,) on the n_test examples of the MNIST test split."""
    _, _, images, labels = mnist_arrays(setting.n_train, setting.n_test, setting.data_seed)
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
    w0 = init_weights(setting.layout, log_scales, seed)
    loss = training_loss(setting, seed)
    if setting.optimizer == "adam":
        beta2s = np.full(np.shape(gammas), setting.beta2)
        return adam(loss, w0, alphas, gammas, beta2s, setting.eps, np.zeros(1),
                    callback=callback, stats=stats, blocks=setting.layout)
    return sgd_momentum(loss, w0, alphas, gammas, np.zeros(1), callback=callback,
                        stats=stats, blocks=setting.layout)


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


@functools.lru_cache(maxsize=2)
def first_mnist_images(n_train, center=False):
    """The first n_train official training images (n_train, 784) and one-hot labels, as the
    authors' load_data() gives them (raw pixels in [0, 1] unless center)."""
    d = mnist_splits(n_train, 0, 0, order="authors", center=center)
    return d["train"].images, one_hot(d["train"].labels)


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
