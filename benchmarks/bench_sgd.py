"""`make bench`: time and memory of one hypergradient by exact reversal, against plain
training and against the reverse modes that store what exact reversal recomputes.

Setting (the paper's schedule experiment): MLP 784-50-50-50-10, batch 200, random data of
MNIST's shape, one step size and one decay per layer (weights and biases) and step.
All ratios are measured in this one run; each time is the best of REPEATS rounds that run
every method once, in turn, so warm-up and load spikes hit all methods alike. BLAS runs on
one thread (two spinning BLAS threads on a shared 2-core machine cost several times).
Usage: python benchmarks/bench_sgd.py [T ...]   (REPEATS: environment variable, default 3)
"""
import os
import sys
import time
import tracemalloc

import autograd.numpy as anp
import numpy as np
from autograd import grad
from threadpoolctl import threadpool_limits

from reproducer import adam, sgd_momentum
from reproducer.adaptive import adam_unrolled
from reproducer.models import cross_entropy, init_weights, minibatch, mlp_layout, mlp_predict
from reproducer.sgd import sgd_momentum_unrolled

LAYOUT = mlp_layout([784, 50, 50, 50, 10])
RS = np.random.RandomState(0)
N, BATCH = 10000, 200
INPUTS, TARGETS = RS.rand(N, 784), np.eye(10)[RS.randint(0, 10, N)]


def loss(w, theta, t):
    idx = minibatch(t, N, BATCH)
    return cross_entropy(mlp_predict(LAYOUT, w, INPUTS[idx]), TARGETS[idx])


def meta_loss(w):
    """The meta-objective: loss on one batch-sized validation set, so that the benchmark
    measures training, not the evaluation of a large meta-objective."""
    return cross_entropy(mlp_predict(LAYOUT, w, INPUTS[-BATCH:]), TARGETS[-BATCH:])


def setting(T, gamma):
    K = len(LAYOUT)
    return (init_weights(LAYOUT, np.full(K, -3.0), seed=0), np.full((T, K), np.exp(-1.0)),
            np.full((T, K), gamma), np.zeros(1))


def plain_training(w0, alphas, gammas, theta):
    return sgd_momentum_unrolled(loss, w0, alphas, gammas, theta, blocks=LAYOUT)


def reversible_training(w0, alphas, gammas, theta, stats=None):
    return sgd_momentum(loss, w0, alphas, gammas, theta, blocks=LAYOUT, stats=stats)


def hypergradient(method):
    def run(w0, alphas, gammas, theta):
        if method == "unrolled":
            train = lambda a, g: plain_training(w0, a, g, theta)
        else:
            train = lambda a, g: sgd_momentum(loss, w0, a, g, theta, blocks=LAYOUT, method=method)
        return grad(lambda a, g: meta_loss(train(a, g)), argnum=[0, 1])(alphas, gammas)
    return run


def adam_setting(T):
    K = len(LAYOUT)
    return (init_weights(LAYOUT, np.full(K, -3.0), seed=0), np.full((T, K), 1e-3),
            np.full((T, K), 0.9), np.full((T, K), 0.999), 1e-8, np.zeros(1))


def adam_plain(w0, alphas, beta1s, beta2s, eps, theta):
    return adam_unrolled(loss, w0, alphas, beta1s, beta2s, eps, theta, blocks=LAYOUT)


def adam_reversible(w0, alphas, beta1s, beta2s, eps, theta, stats=None):
    return adam(loss, w0, alphas, beta1s, beta2s, eps, theta, blocks=LAYOUT, stats=stats)


def adam_hypergradient(train):
    def run(w0, alphas, beta1s, beta2s, eps, theta):
        return grad(lambda a: meta_loss(train(w0, a, beta1s, beta2s, eps, theta)))(alphas)
    return run


def seconds(fun, args):
    start = time.perf_counter()
    fun(*args)
    return time.perf_counter() - start


def best_seconds(funs, args, repeats=None):
    """Best time of each function over `repeats` interleaved rounds (each round runs every
    function once, in turn)."""
    if repeats is None:
        text = os.environ.get("REPEATS", "3")
        repeats = int(text) if text.strip().isdigit() else 0
        if repeats < 1:
            sys.exit(f"REPEATS must be a positive whole number of rounds (e.g. REPEATS=3), got {text!r}.")
    rounds = [[seconds(fun, args) for fun in funs] for _ in range(repeats)]
    return [min(times) for times in zip(*rounds)]


def peak_bytes(fun, args):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fun(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def mb(x):
    return f"{x / 2 ** 20:9.2f} MB"


def verdict(ok):
    return "meets goal" if ok else "MISSES goal"


def main(steps=(100, 1000), gamma=0.5):
    print(__doc__.split("\n\n")[1].replace("REPEATS rounds", f"{os.environ.get('REPEATS', 3)} rounds"))
    print(f"gamma = {gamma} (the paper's initial momentum), alpha = exp(-1), D = {LAYOUT.size}\n")
    for T in steps:
        args = setting(T, gamma)
        t_plain, t_fwd, t_exact, t_stored, t_unrolled = best_seconds(
            [plain_training, reversible_training, hypergradient("exact"),
             hypergradient("stored"), hypergradient("unrolled")], args)
        m_plain = peak_bytes(plain_training, args)
        m_exact = peak_bytes(hypergradient("exact"), args)
        m_stored = peak_bytes(hypergradient("stored"), args)
        m_unrolled = peak_bytes(hypergradient("unrolled"), args)
        stats = {}
        reversible_training(*args, stats=stats)
        trajectory = 2 * (T + 1) * LAYOUT.size * 8

        print(f"T = {T}")
        print(f"  time  plain float64 SGD           {t_plain:8.2f} s")
        print(f"        reversible forward          {t_fwd:8.2f} s   {t_fwd / t_plain:5.2f}x plain   "
              f"({verdict(t_fwd <= 1.2 * t_plain)}: <= 1.2x)")
        print(f"        hypergradient, exact        {t_exact:8.2f} s   {t_exact / t_plain:5.2f}x plain   "
              f"({verdict(t_exact <= 4 * t_plain)}: <= 4x)")
        print(f"        hypergradient, stored traj. {t_stored:8.2f} s   exact/stored = "
              f"{t_exact / t_stored:.2f} ({verdict(t_exact <= t_stored)}: <= 1)")
        print(f"        hypergradient, autograd     {t_unrolled:8.2f} s")
        print(f"  peak  plain float64 SGD          {mb(m_plain)}")
        print(f"        hypergradient, exact       {mb(m_exact)}   {m_exact / m_plain:6.2f}x plain"
              + (f"   ({verdict(m_exact <= 1.5 * m_plain)}: <= 1.5x)" if T >= 1000 else ""))
        print(f"        hypergradient, stored traj.{mb(m_stored)}   {m_stored / m_exact:6.1f}x exact")
        print(f"        hypergradient, autograd    {mb(m_unrolled)}   {m_unrolled / m_exact:6.1f}x exact"
              + (f"   ({verdict(m_unrolled >= 50 * m_exact)}: >= 50x)" if T >= 1000 else ""))
        print(f"  held  information buffer         {mb(stats['buffer_bytes'])}   "
              f"{stats['buffer_bytes'] / stats['bound_bytes']:.3f}x the bound "
              f"(bound {mb(stats['bound_bytes'])}; float64 trajectory {mb(trajectory)})\n")


def main_adam(steps=(100, 1000)):
    print("Adam (beta1 = 0.9, beta2 = 0.999, alpha = 1e-3, per-layer schedules), same setting:")
    for T in steps:
        args = adam_setting(T)
        t_plain, t_fwd, t_exact, t_unrolled = best_seconds(
            [adam_plain, adam_reversible, adam_hypergradient(adam_reversible),
             adam_hypergradient(adam_plain)], args)
        stats = {}
        adam_reversible(*args, stats=stats)
        print(f"T = {T}")
        print(f"  time  plain float64 Adam          {t_plain:8.2f} s")
        print(f"        reversible forward          {t_fwd:8.2f} s   {t_fwd / t_plain:5.2f}x plain")
        print(f"        hypergradient, exact        {t_exact:8.2f} s   {t_exact / t_plain:5.2f}x plain")
        print(f"        hypergradient, autograd     {t_unrolled:8.2f} s   "
              f"{t_unrolled / t_plain:5.2f}x plain")
        print(f"  held  buffers, exponents, log    {mb(stats['buffer_bytes'])}   "
              f"{stats['buffer_bytes'] / stats['bound_bytes']:.3f}x the bound "
              f"(bound {mb(stats['bound_bytes'])})\n")


def load_averages():
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


if __name__ == "__main__":
    steps = tuple(int(a) for a in sys.argv[1:]) or (100, 1000)
    print(f"load averages (1, 5, 15 min) at the start: {load_averages()}")
    with threadpool_limits(limits=1, user_api="blas"):
        main(steps)
        main_adam(steps)
    print(f"load averages (1, 5, 15 min) at the end: {load_averages()}")
