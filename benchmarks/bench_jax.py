"""`make bench` (JAX part): one hypergradient by exact reversal in JAX (reproducer.jax)
against jax.grad through a jitted lax.scan, which stores the trajectory.

Setting (the paper's schedule experiment): MLP 784-50-50-50-10, batch 200, random data of
MNIST's shape, one step size and one decay per layer block and step, gamma = 0.5.
Times: each the best of REPEATS rounds (environment variable, default 3) that run every
method once, in turn, after one untimed call that compiles it. Memory: each method runs
once in a fresh subprocess, compiled first (everything it runs: it reports any program
compiled during the run), and reports its peak (the device's peak_bytes_in_use where JAX
reports one, as on a GPU; else the process's peak resident memory, which includes the
~0.3 GB that JAX and the data take before anything runs, the "baseline", and what the
C library keeps of the memory the compiler freed; a second reading at the first T returns
that to the OS first, in both methods alike).
XLA and BLAS run on one thread. Nothing here assumes a CPU: on a GPU machine the same
command (pip install "jax[cuda12]" first) times the GPU.
Usage: python benchmarks/bench_jax.py [T ...]     (default: 1000; memory also at 3000, 10000)
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                      "intra_op_parallelism_threads=1")
import ctypes  # noqa: E402
import ctypes.util  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from reproducer import jax as rj  # noqa: E402
from reproducer.models import init_weights, mlp_layout  # noqa: E402

LAYOUT = mlp_layout([784, 50, 50, 50, 10])
K = len(LAYOUT)
N, BATCH, GAMMA = 10000, 200, 0.5
_rs = np.random.RandomState(0)
INPUTS = jnp.asarray(_rs.rand(N, 784))
TARGETS = jnp.asarray(np.eye(10)[_rs.randint(0, 10, N)])
W0 = jnp.asarray(init_weights(LAYOUT, np.full(K, -3.0), seed=0))
THETA = jnp.zeros(1)


def loss(w, theta, t):
    """Training loss of step t's batch: consecutive slices of the data, cycling."""
    start = (t % (N // BATCH)) * BATCH
    x = lax.dynamic_slice_in_dim(INPUTS, start, BATCH)
    y = lax.dynamic_slice_in_dim(TARGETS, start, BATCH)
    return rj.cross_entropy(rj.mlp_predict(LAYOUT, w, x), y)


@jax.jit
def meta_loss(w):
    """Loss on one batch-sized validation set (the benchmark measures training)."""
    return rj.cross_entropy(rj.mlp_predict(LAYOUT, w, INPUTS[-BATCH:]), TARGETS[-BATCH:])


@functools.lru_cache(maxsize=None)
def schedules(T):
    """The schedules for T steps, made once (so that no run includes making them)."""
    return (jnp.full((T, K), np.exp(-1.0), dtype=jnp.float64),
            jnp.full((T, K), GAMMA, dtype=jnp.float64))


STATS = {}      # the information buffer of the last exact-reversal run


def ours_forward(alphas, gammas):
    return rj.sgd_momentum(loss, W0, alphas, gammas, THETA, blocks=LAYOUT, stats=STATS)


_ours_grad = jax.grad(lambda a, g: meta_loss(ours_forward(a, g)), argnums=(0, 1))
_jax_forward = jax.jit(lambda a, g: rj.sgd_momentum_unrolled(loss, W0, a, g, THETA, blocks=LAYOUT))
_jax_grad = jax.jit(jax.grad(lambda a, g: meta_loss(
    rj.sgd_momentum_unrolled(loss, W0, a, g, THETA, blocks=LAYOUT)), argnums=(0, 1)))


@jax.jit
def _floor(w, u, T):
    """What any reverse-mode method must compute: a gradient per step going forwards and a
    gradient with a Hessian-vector product per step going backwards (no weight updates)."""
    def body(t, acc):
        g = jax.grad(loss)(w + acc[0] * 1e-30, THETA, t)
        g2, hu = jax.jvp(lambda w_: jax.grad(loss)(w_, THETA, t), (w + acc[1] * 1e-30,), (u,))
        return acc[0] + g[0], acc[1] + g2[0] + hu[0]
    return lax.fori_loop(0, T, body, (0.0, 0.0))


METHODS = {
    "exact reversal, forward": ours_forward,
    "exact reversal, hypergradient": _ours_grad,
    "jax.grad via lax.scan, forward": _jax_forward,
    "jax.grad via lax.scan, hypergradient": _jax_grad,
}


def run(name, T):
    if name == "floor":
        return _floor(W0, jnp.ones_like(W0) * 1e-3, T)
    return METHODS[name](*schedules(T))


def seconds(name, T):
    """(wall-clock, CPU) seconds of one call: on a shared machine the CPU time of this
    single-threaded process is the steadier of the two."""
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(run(name, T))
    return time.perf_counter() - start, time.process_time() - cpu


def repeats():
    text = os.environ.get("REPEATS", "3")
    count = int(text) if text.strip().isdigit() else 0
    if count < 1:
        sys.exit(f"REPEATS must be a positive whole number of rounds (e.g. REPEATS=3), got {text!r}.")
    return count


def best_seconds(names, T):
    for name in names:
        seconds(name, T)                            # compile (and warm up) each first
    rounds = [[seconds(name, T) for name in names] for _ in range(repeats())]
    wall = dict(zip(names, (min(t[0] for t in times) for times in zip(*rounds))))
    cpu = dict(zip(names, (min(t[1] for t in times) for times in zip(*rounds))))
    return wall, cpu


def peak_memory(name, T, trim=False):
    """One call of a method in a fresh process: (its _report_memory dict, None), or (None,
    the error's last line). trim: return freed memory to the OS after compiling."""
    out = subprocess.run([sys.executable, __file__, "--memory", name, str(T)]
                         + (["--trim"] if trim else []), capture_output=True, text=True)
    if out.returncode:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def peak_rss(field="VmHWM"):
    """This process's peak resident memory in bytes: VmHWM where /proc has it (ru_maxrss
    would include the RSS of the parent at the fork), else ru_maxrss. field="VmRSS": the
    resident memory now."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _precompile(name, T):
    """Compile a method for T steps without running it (and the meta-loss's gradient, which
    our hypergradient calls outside the two compiled passes)."""
    alphas, gammas = schedules(T)
    if name.startswith("exact reversal"):
        rj.precompile(loss, W0, alphas, gammas, THETA, blocks=LAYOUT)
        if name.endswith("hypergradient"):
            jax.block_until_ready(jax.grad(meta_loss)(W0))
    elif name.startswith("jax.grad"):
        (_jax_grad if name.endswith("hypergradient") else _jax_forward).lower(alphas, gammas).compile()


def malloc_trim():
    """Return the heap's free memory to the OS (glibc's malloc_trim(0)); False where the C
    library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _report_memory(name, T, trim=False):
    """(In the subprocess.) Compile, reset the peak, run once; print the peaks as JSON:
    "compiled" after compiling, "peak" of the run (VmHWM reset after compiling, where Linux
    allows it; else it includes compilation, and "reset" is false), "added": the run's
    peak above the memory resident once compiled (which keeps what the compiler used), and
    "compiled_in_run": the programs compiled during the run (none, if _precompile compiled
    everything). trim: first hand the memory the compiler freed back to the OS ("trimmed")."""
    _precompile(name, T)
    trimmed = trim and malloc_trim()
    compiled, resident = peak_rss(), peak_rss("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")              # resets VmHWM to the current resident memory
        reset = True
    except OSError:
        reset = False
    compiles = _Compiles()
    with jax.log_compiles():
        logging.getLogger("jax").addHandler(compiles)
        if name != "baseline":
            jax.block_until_ready(run(name, T))
        logging.getLogger("jax").removeHandler(compiles)
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    source = "device peak_bytes_in_use" if peak else "peak resident memory (VmHWM)"
    peak = peak or peak_rss()
    print(json.dumps({"peak": peak, "source": source, "compiled": compiled, "reset": reset,
                      "added": peak - (0 if stats.get("peak_bytes_in_use") else resident),
                      "compiled_in_run": compiles.programs, "trimmed": trimmed, **STATS}))


class _Compiles(logging.Handler):
    """Collects the programs JAX compiles (jax.log_compiles's messages) while attached."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.programs = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Compiling "):
            self.programs.append(message.split(" with ")[0][len("Compiling "):])


def compiled_note(peak):
    """A warning where a method compiled something during its measured run."""
    programs = peak.get("compiled_in_run")
    if not programs:
        return ""
    return (f"\n    NOTE: {len(programs)} programs compiled during this run "
            f"({', '.join(sorted(set(programs)))}): its peak includes compiling")


def gb(x):
    return f"{x / 2 ** 30:7.3f} GB"


def verdict(ok):
    return "meets goal" if ok else "MISSES goal"


def available_bytes():
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":") for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def main(steps=(1000,)):
    ours_memory_steps, jax_memory_steps = (steps[0], 10 * steps[0]), (steps[0], 3 * steps[0])
    print(__doc__.split("\n\n")[1].replace("REPEATS rounds", f"{repeats()} rounds"))
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax "
          f"{jax.__version__}, D = {LAYOUT.size}, XLA_FLAGS = {os.environ.get('XLA_FLAGS')!r}")
    if hasattr(os, "getloadavg"):
        print("load averages (1, 5, 15 min) at the start: "
              + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    print()
    for T in steps:
        wall, cpu = best_seconds(list(METHODS) + ["floor"], T)
        print(f"T = {T}: time (wall clock, and CPU time of this process)")
        for name in wall:
            print(f"  {name:40s} {wall[name]:8.2f} s {1e3 * wall[name] / T:7.2f} ms/step   "
                  f"CPU {cpu[name]:8.2f} s {1e3 * cpu[name] / T:7.2f} ms/step")
        for times, clock in ((wall, "wall"), (cpu, "CPU")):
            ours_f, ours_g = times["exact reversal, forward"], times["exact reversal, hypergradient"]
            jax_f = times["jax.grad via lax.scan, forward"]
            jax_g = times["jax.grad via lax.scan, hypergradient"]
            print(f"  {clock:4s} hypergradient: ours / jax.grad      {ours_g / jax_g:6.2f}x   "
                  f"({verdict(ours_g <= 0.7 * jax_g)}: <= 0.7x)")
            print(f"  {clock:4s} hypergradient: ours / jax forward   {ours_g / jax_f:6.2f}x   "
                  f"({verdict(ours_g <= 4 * jax_f)}: <= 4x)")
            print(f"  {clock:4s} forward: ours / jax forward         {ours_f / jax_f:6.2f}x")
            print(f"  {clock:4s} hypergradient: ours / floor         {ours_g / times['floor']:6.2f}x"
                  "   (floor: a gradient per step forwards, a gradient and HVP backwards)")
        print()
    print("peak memory of one hypergradient (fresh process each; compiled first, then the "
          "peak of the run)")
    base, _ = peak_memory("baseline", 1)
    print(f"  baseline (JAX, data, nothing run)        {gb(base['peak'])}   ({base['source']})")
    jax_peaks = {}
    for T in jax_memory_steps:
        free = available_bytes()
        if jax_peaks and free is not None:
            smaller = max(jax_peaks)
            need = jax_peaks[smaller]["added"] * T / smaller
            if free < 1.2 * need:
                print(f"  jax.grad via lax.scan, T = {T:6d}       skipped: needs about "
                      f"{gb(need)}, {gb(free)} free")
                continue
        peak, error = peak_memory("jax.grad via lax.scan, hypergradient", T)
        if peak is None:
            print(f"  jax.grad via lax.scan, T = {T:6d}       failed: {error}")
            continue
        jax_peaks[T] = peak
        print(f"  jax.grad via lax.scan, T = {T:6d}       peak {gb(peak['peak'])}, the run "
              f"added {gb(peak['added'])} (with compiling: {gb(max(peak['compiled'], peak['peak']))})"
              + compiled_note(peak))
    for T in ours_memory_steps:
        peak, error = peak_memory("exact reversal, hypergradient", T)
        if peak is None:
            print(f"  exact reversal, T = {T:6d}              failed: {error}")
            continue
        line = (f"  exact reversal, T = {T:6d}              peak {gb(peak['peak'])}, the run "
                f"added {gb(peak['added'])} (with compiling: {gb(max(peak['compiled'], peak['peak']))})")
        if T in jax_peaks:
            total = peak["peak"] / jax_peaks[T]["peak"]
            added = peak["added"] / max(jax_peaks[T]["added"], 1)
            line += (f"\n    ours / jax.grad: peak {total:5.3f}x, added by the run {added:6.4f}x "
                     f"({verdict(added <= 0.1)} on the run: <= 0.1x; {verdict(total <= 0.1)} "
                     "on the whole process)")
        print(line + compiled_note(peak))
        print(f"    its information buffer: {gb(peak['buffer_bytes'])}, "
              f"{peak['buffer_bytes'] / peak['bound_bytes']:.3f}x the bound (a float64 "
              f"trajectory: {gb(2 * (T + 1) * LAYOUT.size * 8)})")
    T = steps[0]
    if T in jax_peaks and jax_peaks[T]["source"].startswith("peak resident"):
        trimmed = {name: peak_memory(name, T, trim=True)[0] for name in
                   ("exact reversal, hypergradient", "jax.grad via lax.scan, hypergradient")}
        if all(p and p["trimmed"] for p in trimmed.values()):
            ours, theirs = (trimmed[n]["peak"] for n in trimmed)
            print(f"  the same at T = {T} after returning the memory the compiler freed to the OS "
                  f"(glibc malloc_trim(0) after\n  compiling, in both): exact reversal "
                  f"{gb(ours).strip()}, jax.grad {gb(theirs).strip()}, {ours / theirs:5.3f}x "
                  "(the goal's reading is the one above, untrimmed)")
    if hasattr(os, "getloadavg"):
        print("load averages (1, 5, 15 min) at the end: "
              + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    with threadpool_limits(1):
        if sys.argv[1:2] == ["--memory"]:
            _report_memory(sys.argv[2], int(sys.argv[3]), trim=sys.argv[4:5] == ["--trim"])
        else:
            main(tuple(int(a) for a in sys.argv[1:]) or (1000,))
