"""Checks of a notebook's parameters: a value a reader changed to something that cannot work
(a negative T, a batch larger than the training set, a momentum of 1.5, a string for a
number) stops the notebook at its top with one sentence naming the value and the cell it
lives in, not minutes later with a traceback from deep inside numpy.

A notebook calls, after its sizes cell,

    check_parameters(sizes, seed=seed, gamma=gamma, ...)

Each name picks its rule in RULES (a name without a rule is not checked).
"""
import math
import numbers


class ParameterError(ValueError):
    """A notebook parameter with a value that cannot work."""


def _integer(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def _real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _list_of(test):
    return lambda x: isinstance(x, (list, tuple)) and len(x) > 0 and all(test(v) for v in x)


def _is_int(low):
    return lambda x: _integer(x) and x >= low


def _in(low, high, low_open, high_open):
    def test(x):
        return (_real(x) and (x > low if low_open else x >= low)
                and (x < high if high_open else x <= high))
    return test


SEED = (_is_int(0), "a non-negative integer")
COUNT = (_is_int(1), "a positive integer")
INDEX = (_is_int(0), "a non-negative integer")
REAL = (_real, "a finite number")
POSITIVE = (lambda x: _real(x) and x > 0, "a positive number")
DECAY = (_in(0, 1, True, False), "a number in (0, 1]")
MASS = (_in(0, 1, False, True), "a number in [0, 1)")

# name -> (test, what a good value is)
RULES = {
    **{name: SEED for name in ("seed", "eval_seed", "data_seed", "final_seed")},
    **{name: COUNT for name in (
        "T", "meta_T", "meta_iters", "ablation_iters", "n_train", "n_valid", "n_test",
        "batch_size", "hidden", "n_stencils", "stencil_size", "n_seeds", "n_eval_seeds",
        "n_real_draws", "n_replicates", "n_final_seeds", "n_directions", "n_characters",
        "match_rows", "match_cols", "timing_repeats", "held_out", "bit_params", "bit_words",
        "every")},
    **{name: COUNT for name in ("bo_runs", "n_rescore", "n_rescore_seeds", "mlp_T", "mlp_hidden")},
    "rescore_seed": SEED,
    "mlp_gamma": DECAY, "mlp_log_alpha": REAL, "mlp_batch": COUNT,
    **{name: INDEX for name in ("drawing", "max_shift")},
    **{name: REAL for name in (
        "log_alpha", "log_scale", "log_init_scale", "log_penalty0", "log_l2_0", "log_l2",
        "meta_log_alpha", "adam_log_alpha", "sgd_log_alpha")},
    **{name: POSITIVE for name in (
        "alpha", "meta_step", "preprocessing_step", "stencil_step", "image_scale0",
        "unrolled_budget_mb", "std_floor")},
    **{name: DECAY for name in ("gamma", "sgd_gamma", "meta_gamma")},
    **{name: MASS for name in ("meta_mass", "adam_beta1")},
    "init_corr": (_in(0, 1, False, False), "a number in [0, 1]"),
    "prior_strength": (lambda x: _real(x) and x >= 0, "a non-negative number"),
    "n_jobs": (lambda x: _integer(x) and x != 0, "a non-zero integer (-1: all cores)"),
    "w0": (lambda x: _list_of(_real)(x) and len(x) == 2, "a list of two finite numbers"),
    "layer_sizes": (lambda x: _list_of(_is_int(1))(x) and len(x) >= 2 and x[0] == 784,
                    "a tuple of at least two positive integers starting with 784 (28 x 28 pixels)"),
    "grid": (_list_of(_real), "a non-empty list of finite numbers"),
    "steps": (_list_of(_is_int(1)), "a non-empty list of positive integers"),
    "bit_gammas": (_list_of(_in(0, 1, True, True)), "a non-empty list of numbers in (0, 1)"),
    "split": (lambda x: x in ("authors", "random"), '"authors" or "random"'),
    "draw": (lambda x: x in ("authors", "epochs"), '"authors" or "epochs"'),
    "center": (lambda x: isinstance(x, bool), "True or False"),
    "output_dir": (lambda x: isinstance(x, str) and x != "", "a folder's path (a string)"),
    "paper_figure": (lambda x: isinstance(x, str), "a file's path (a string)"),
}


def check_parameters(sizes=None, **parameters):
    """Raise ParameterError naming the first value that breaks its rule in RULES.

    sizes: the notebook's sizes dict (nested dicts, like `setting`, are checked too);
    parameters: the values of the parameters cell, by name."""
    _check(parameters, "the parameters cell", lambda name: name)
    if sizes is not None:
        _check(sizes, "the sizes cell", lambda name: f'sizes["{name}"]')


def _check(values, cell, label):
    for name, value in values.items():
        if isinstance(value, dict):
            _check(value, cell, lambda inner, outer=label(name): f'{outer}["{inner}"]')
            continue
        test, good = RULES.get(name, (lambda x: True, ""))
        try:
            ok = bool(test(value))
        except TypeError:           # e.g. a comparison of a string with a number
            ok = False
        if not ok:
            raise ParameterError(f"{label(name)} = {value!r} in {cell}: it must be {good}.")
    batch, n_train = values.get("batch_size"), values.get("n_train")
    if _integer(batch) and _integer(n_train) and batch > n_train:
        raise ParameterError(f"{label('batch_size')} = {batch} is larger than {label('n_train')} = "
                             f"{n_train} in {cell}: a minibatch cannot hold more examples than "
                             "the training set.")
