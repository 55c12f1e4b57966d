"""Penalties inside the training loss, whose strengths are hyperparameters (Figs. 6, 9).

Both are pure autograd functions, so their log-strengths can be passed to `sgd_momentum`
as theta and learned by hypergradient descent.
"""
import autograd.numpy as np


def per_weight_l2(w, log_penalties):
    """sum_i exp(log_penalties_i) w_i^2: an L2 penalty of its own for every weight.
    w, log_penalties: (D,) -> scalar."""
    return np.sum(np.exp(log_penalties) * w ** 2)


def penalty_prior(log_penalties, strength):
    """strength * sum_i exp(log_penalties_i)^2: the term the authors add to Fig. 6's
    meta-objective (HIPS/hypergrad experiments/Jan_21_nn_ard, meta_L2_reg), which keeps
    the learned penalties small where the validation loss does not care."""
    return strength * np.sum(np.exp(2 * log_penalties))


def n_pairs(n_tasks):
    """Number of unordered pairs of tasks: n (n - 1) / 2."""
    return n_tasks * (n_tasks - 1) // 2


def coupling_matrix(log_diagonal, log_couplings):
    """A (n, n) = diag(exp(log_diagonal)) + the Laplacian of pair couplings exp(log_couplings).

    log_diagonal: (n,); log_couplings: (n (n - 1) / 2,), pairs (i < j) in np.triu_indices
    order. Then w^T A w = sum_i d_i w_i^2 + sum_{i<j} c_ij (w_i - w_j)^2: an L2 penalty on
    each task's weight plus a pull of every pair of tasks towards each other. A is positive
    definite for every real input, c = 0 gives separate tasks and c -> infinity tied ones.
    """
    n = len(log_diagonal)
    upper = np.triu(np.ones((n, n)), 1).ravel() > 0
    scatter = np.eye(n * n)[:, upper]          # (n^2, pairs): places pairs in the upper triangle
    c = np.reshape(np.dot(scatter, np.exp(log_couplings)), (n, n))
    c = c + c.T
    return np.diag(np.exp(log_diagonal) + np.sum(c, axis=1)) - c


def coupling_penalty(W, A):
    """sum_p W[:, p]^T A W[:, p] = sum_ij A_ij <W_i, W_j>: the quadratic penalty w^T A w
    that couples the same weight p across n tasks. W: (n, P) one row per task; A: (n, n)."""
    return np.sum(A * np.dot(W, W.T))


def correlations(A):
    """The correlation matrix (n, n) of a Gaussian prior with precision A: what A says
    about how alike the tasks' weights are (identity: independent; all ones: identical)."""
    covariance = np.linalg.inv(A)
    s = np.sqrt(np.diag(covariance))
    return covariance / np.outer(s, s)
