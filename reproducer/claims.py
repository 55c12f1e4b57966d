"""The claims ledger: each quantitative claim of the paper beside our number.

    python -m reproducer.claims [--figures figures] [--readme README.md | --no-readme]

Reads the JSON files the figure notebooks wrote, writes FIGURES/claims.json, and rewrites
the README between the lines <!-- claims:start --> and <!-- claims:end --> (if the markers
are missing it prints the table and says where to add them); both files are written whole
or not at all. A claim whose figure has not been run is listed as "not yet run", one whose
JSON lacks a number (or holds a null, NaN, infinity or string where the number belongs) as
"not measured" with what is missing, one whose figure was made at quick or smoke scale as
"not judged" (the note says what the rule gives there): no value is ever filled in by hand.
Each claim states the rule that decides "supports", and every rule can fail: a rule about
something learned fails when the learned values are replaced by the starting ones
(tests/test_claims.py); a rule about something not learned says so in its note.
A figure's JSON that cannot be read at all (not JSON, truncated, a folder) is named in one
line on stderr, its claims are "not measured", and the command exits with status 1.
"""
import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .provenance import WriteError, replace_between, write_all

START, END = "<!-- claims:start -->", "<!-- claims:end -->"
NOT_RUN, NOT_MEASURED, NOT_JUDGED = "not yet run", "not measured", "not judged"


@dataclass(frozen=True)
class Claim:
    """A claim of the paper. measure(data) -> (ours: float or None, text: str, supports: bool,
    note: str) reads the figure's JSON (a dict); it raises Missing when a quantity it needs
    is absent or not a finite number, and returns supports=None (with a note saying what is
    missing) for "not measured". not_learned: why the rule is not about something learned
    (so it has no no-learning control), or "" when it is."""
    key: str
    claim: str
    paper: str
    figure: str
    measure: Callable
    not_learned: str = ""


class Missing(Exception):
    """A quantity a rule needs is absent, null, not a number or not finite: "not measured"."""


class Unreadable(Exception):
    """A figure's JSON file that cannot be read at all; the message names the file."""


# --- reading the figures' JSON -------------------------------------------------------------

def _where(path):
    """('a', 'b', 3) -> 'a.b[3]', the way a note names a quantity of the JSON."""
    return "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(path))


def _short(value):
    text = json.dumps(value) if isinstance(value, (str, list, dict)) else repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _get(data, *path):
    """data[path[0]][path[1]]...; Missing saying which step is absent or null."""
    value = data
    for i, key in enumerate(path):
        if isinstance(key, int):
            if not isinstance(value, list):
                raise Missing(f"{_where(path[:i])} is {_short(value)}, not a list")
            if not -len(value) <= key < len(value):
                raise Missing(f"{_where(path[:i])} has {len(value)} entries, no entry {key}")
        elif not isinstance(value, dict):
            raise Missing(f"{_where(path[:i]) or 'the file'} is {_short(value)}, not a JSON object")
        elif key not in value:
            raise Missing(f"lacks {_where(path[:i + 1])}")
        value = value[key]
        if value is None:
            raise Missing(f"{_where(path[:i + 1])} is null (not measured or diverged)")
    return value


def _finite(value, where):
    """value as a float; Missing if it is not a number or not finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Missing(f"{where} is {_short(value)}, not a number")
    if not math.isfinite(value):
        raise Missing(f"{where} is {value}, not a finite number (the run diverged or failed)")
    return float(value)


def _number(data, *path):
    """The finite number at data[path...] (Missing otherwise)."""
    return _finite(_get(data, *path), _where(path))


def _maybe(data, *path):
    """The finite number at data[path...], or None: for what only a note mentions."""
    try:
        return _number(data, *path)
    except Missing:
        return None


def _array(data, *path, finite=True):
    """The JSON list at data[path...] as a float array (null, how plotting.to_json writes NaN,
    becomes nan). Missing if it is not a non-empty rectangular array of numbers, or, with
    finite=True, if any entry is not finite."""
    value, where = _get(data, *path), _where(path)
    if not _all_numbers(value):
        raise Missing(f"{where} is not an array of numbers")
    try:
        array = np.array(value, dtype=float)
    except (TypeError, ValueError):                 # ragged
        raise Missing(f"{where} is not a rectangular array of numbers") from None
    if array.ndim == 0 or array.size == 0:
        raise Missing(f"{where} is {_short(value)}, not a non-empty array of numbers")
    if finite and not np.all(np.isfinite(array)):
        bad = int(np.sum(~np.isfinite(array)))
        raise Missing(f"{where} holds {bad} of {array.size} values that are not finite "
                      "(null, NaN or infinity: runs that diverged or failed)")
    return array


def _all_numbers(value):
    """Whether value is a number, null, or (nested) lists of them: text is never a number."""
    if isinstance(value, list):
        return all(_all_numbers(v) for v in value)
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _read_figure(path):
    """A figure's JSON as a dict; Unreadable (one line naming the file) if it is not one."""
    if path.is_dir():
        raise Unreadable(f"{path} is a folder, not a figure's JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Unreadable(f"{path} is not UTF-8 text") from None
    except OSError as error:
        raise Unreadable(f"{path} cannot be read ({error.strerror or error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise Unreadable(f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column "
                         f"{error.colno}; a truncated file?)") from None
    if not isinstance(data, dict):
        raise Unreadable(f"{path} holds a JSON {type(data).__name__}, not an object of named numbers")
    return data


# --- memory (memory_comparison.json) ------------------------------------------------------

def _bits_at(data, gamma):
    """The measured bits per parameter per step at this gamma (Missing if not measured)."""
    gammas, bits = _array(data, "gammas"), _array(data, "bits_per_param_step", finite=False)
    for g, b in zip(gammas, bits):
        if math.isclose(g, gamma):
            if not math.isfinite(b) or b <= 0:
                raise Missing(f"bits_per_param_step at gamma = {gamma} is {b}, not a positive number")
            return float(b)
    raise Missing(f"lacks bits_per_param_step at gamma = {gamma}")


def _bits(gamma, paper_bits):
    def measure(data):
        bits = _bits_at(data, gamma)
        off = bits / paper_bits - 1
        return bits, f"{bits:.4f}", abs(off) <= 0.05, (
            f"What our buffer holds, measured by running it alone; log2(1/{gamma}) = "
            f"{-math.log2(gamma):.4f}. {off:+.1%} against the paper (rule: within 5%).")
    return measure


def _last(data, *path):
    """The last finite entry of a JSON list, or None."""
    try:
        values = _array(data, *path, finite=False)
    except Missing:
        return None
    values = values[np.isfinite(values)]
    return float(values[-1]) if values.size else None


def _factor(gamma, paper_factor, tolerance):
    def measure(data):
        factor = 32 / _bits_at(data, gamma)
        note = (f"32 bits / our measured bits per parameter per step (rule: at least "
                f"{1 - tolerance:.0%} of {paper_factor}x).")
        T, problem_gamma = _last(data, "T"), _maybe(data, "problem", "gamma")
        stored, ours = _last(data, "stored_trajectory", "bytes"), _last(data, "exact_reversal", "bytes")
        if None not in (T, problem_gamma, stored, ours):
            note += (f" Whole hypergradient at T = {T:.0f}, gamma {problem_gamma}: "
                     f"peak {stored / 2 ** 20:.1f} MB storing the float64 trajectory, "
                     f"{ours / 2 ** 20:.2f} MB by exact reversal, where one step's working "
                     "memory, not the buffer, dominates.")
        mlp_ratio, mlp_T = _maybe(data, "mlp", "stored_over_exact"), _maybe(data, "mlp", "problem", "T")
        if mlp_ratio is not None and mlp_T is not None:
            note += (f" In the MLP setting ({_get(data, 'mlp', 'problem').get('model', 'MLP')}, "
                     f"T = {mlp_T:.0f}) storing the whole trajectory costs only {mlp_ratio:.1f}x exact "
                     "reversal's peak, because per-step working memory dominates: the factor above is "
                     "the buffer's, not a whole hypergradient's.")
        return factor, f"{factor:.0f}x", factor >= (1 - tolerance) * paper_factor, note
    return measure


def _memory_whole(data):
    """Peak memory of one whole hypergradient at the longest training measured by all three."""
    T = _array(data, "T")
    methods = {"exact reversal": "exact_reversal", "checkpointing": "checkpointing",
               "stored trajectory (naive reverse mode)": "stored_trajectory"}
    peaks = {name: _array(data, key, "bytes", finite=False) for name, key in methods.items()}
    if any(len(p) != len(T) for p in peaks.values()):
        raise Missing("the bytes of exact_reversal, checkpointing and stored_trajectory do not "
                      "have one entry per T")
    both = np.flatnonzero(np.all([np.isfinite(p) & (p > 0) for p in peaks.values()], axis=0))
    if both.size == 0:
        raise Missing("no T at which exact reversal, checkpointing and the stored trajectory "
                      "were all measured")
    i = both[np.argmax(T[both])]
    exact, checkpoint, stored = (peaks[name][i] for name in methods)
    note = (f"Peak memory of one whole hypergradient at T = {T[i]:.0f}, the longest training "
            f"all three were measured at ({_problem_text(data)}): exact reversal "
            f"{exact / 2 ** 20:.2f} MB, checkpointing {checkpoint / 2 ** 20:.2f} MB "
            f"({checkpoint / exact:.1f}x), storing the float64 trajectory {stored / 2 ** 20:.1f} MB "
            f"({stored / exact:.0f}x).")
    unrolled = _array(data, "autograd_unrolled", "bytes", finite=False) if isinstance(
        data.get("autograd_unrolled"), dict) and data["autograd_unrolled"].get("bytes") else None
    if unrolled is not None and len(unrolled) == len(T) and np.isfinite(unrolled).any():
        j = np.flatnonzero(np.isfinite(unrolled))[-1]
        note += (f" Autograd through the unrolled loop: {unrolled[j] / 2 ** 20:.0f} MB at "
                 f"T = {T[j]:.0f}" + (", over its budget beyond." if j < len(T) - 1 else "."))
    small = int(np.argmin(T))
    if peaks["exact reversal"][small] >= peaks["checkpointing"][small]:
        note += (f" At T = {T[small]:.0f} exact reversal is not the smallest: per-step "
                 "working memory dominates short runs.")
    return exact, f"{exact / 2 ** 20:.2f} MB vs {checkpoint / 2 ** 20:.2f} and {stored / 2 ** 20:.0f} MB", \
        exact < min(checkpoint, stored), note + " Rule: exact reversal below both there."


def _problem_text(data):
    problem = data.get("problem")
    if isinstance(problem, dict) and isinstance(problem.get("model"), str):
        return f"{problem['model']}, {problem.get('parameters', '?')} parameters"
    return "the notebook's problem"


# --- the cost of a hypergradient (fig3_learning_curves.json) --------------------------------

COST_SENTENCE = ('"Reverse-mode differentiation of f through all T steps gives the gradient with '
                 'respect to all of them at once ("hypergradient"), at about the cost of training '
                 'twice." (PAPER.md, The idea in one paragraph)')


def _cost(data):
    """Measured on the Fig. 2 setting by the learning_schedules notebook (fig3 JSON)."""
    c = ("hypergradient_cost",)
    hyper, forward = _number(data, *c, "hypergradient_seconds"), _number(data, *c, "forward_seconds")
    gradients = _number(data, *c, "gradients_seconds")
    with_hvp = _number(data, *c, "gradient_and_hvp_seconds")
    if min(hyper, forward, gradients, with_hvp) <= 0:
        raise Missing("a time in hypergradient_cost is not positive")
    reverse, hvp = hyper - forward, with_hvp - gradients
    plain = _maybe(data, *c, "plain_seconds")
    timed_alone = plain is not None and _maybe(data, *c, "reverse_seconds") is not None
    if timed_alone:   # the notebook that writes plain_seconds times the reverse pass on its own
        reverse = _number(data, *c, "reverse_seconds")
    c_hvp, exact = hvp / gradients, reverse - with_hvp
    floor = 1 + (1 + c_hvp)
    load = data["hypergradient_cost"].get("load_average")
    load = (" (load average {:.1f} before, {:.1f} after)".format(*load)
            if isinstance(load, list) and len(load) == 2 and all(isinstance(x, (int, float)) for x in load) else "")
    note = (f"The paper's sentence: {COST_SENTENCE}. Measured in Fig. 2's setting "
            f"(784-50-50-50-10, 10,000 digits, T = 100, batch 200), each time the best of repeats "
            f"taken in turns, BLAS on one thread, on a shared 2-core machine{load}: one hypergradient "
            f"{hyper:.2f} s {'~' if timed_alone else '='} the reversible forward pass {forward:.2f} s (fixed-point weights and the "
            f"information buffer: not plain training) + the reverse pass {reverse:.2f} s"
            f"{' (timed on its own)' if timed_alone else ''}, which is "
            f"T recomputed minibatch gradients {gradients:.2f} s, T Hessian-vector products "
            f"{hvp:.2f} s and exact arithmetic {exact:.2f} s. Hypergradient / reversible forward "
            f"{hyper / forward:.2f}x. The floor: every reverse step recomputes a gradient and takes "
            f"one Hessian-vector product, which costs c_HVP = {c_hvp:.2f} gradients here (autograd "
            f"differentiating the gradient again), so forward + reverse cannot be below about "
            f"1 + (1 + c_HVP) = {floor:.2f} trainings: \"training twice\" can describe at most the "
            "reverse pass alone, and only where c_HVP is near 1.")
    if plain is None or plain <= 0:
        return None, "-", None, (
            "fig3_learning_curves.json lacks hypergradient_cost.plain_seconds (one plain float64 "
            "training run, same T, minibatches and weights, timed in turns with the others), so "
            "hypergradient / plain training and reverse pass / plain training are not measured. "
            + note + " Rule, once measured: hypergradient at most 3 plain trainings (about twice).")
    ratio = hyper / plain
    return ratio, f"{ratio:.1f}x", ratio <= 3, (
        f"One plain float64 training run {plain:.2f} s: hypergradient / plain training "
        f"{ratio:.2f}x (floor {floor:.2f}x), reverse pass alone / plain training {reverse / plain:.2f}x, "
        f"reversible forward / plain {forward / plain:.2f}x. " + note
        + " Rule: hypergradient at most 3 plain trainings (about twice).")


# --- Figure 1 (toy meta-learning) -----------------------------------------------------------

# The authors' Fig. 1 run: train_loss of HIPS/hypergrad experiments/Jan_25_Figure_1/2/results.pkl
# (commit 930218fc912d74786eb47d9b429d0da1d4cfbb7b), the loss at w_T of meta-iterations 1, 2, 3.
AUTHORS_FIG1 = (395.3048970305571, 356.5661601302375, 356.34134257661157)


def _toy_meta_losses(data):
    ours = _array(data, "meta_loss")
    if len(ours) != len(AUTHORS_FIG1):
        raise Missing(f"meta_loss has {len(ours)} meta-iterations, not the authors' {len(AUTHORS_FIG1)}")
    theirs = np.array(AUTHORS_FIG1)
    offs = ours / theirs - 1
    drop, their_drop = ours[0] - ours[-1], theirs[0] - theirs[-1]
    worst = float(np.max(np.abs(offs)))
    supports = worst <= 1e-3 and abs(drop / their_drop - 1) <= 0.05
    return float(ours[-1]), ", ".join(f"{x:.2f}" for x in ours), supports, (
        f"Final loss (at w_T) of each of the three meta-iterations against the authors' own run "
        f"(train_loss of experiments/Jan_25_Figure_1/2/results.pkl): largest difference {worst:.2%}; "
        f"meta-learning lowered it by {drop:.2f} over the three, theirs by {their_drop:.2f}. "
        "Rule: each within 0.1% of theirs and the decrease within 5% of theirs (a meta-learning "
        "that did nothing fails the second).")


# --- Figures 3 and 5 (learning_schedules) -------------------------------------------------

def _meta_curve(data):
    losses = _array(data, "meta_train_loss")
    if len(losses) < 2:
        raise Missing("meta_train_loss has fewer than 2 meta-iterations")
    first, last = float(losses[0]), float(losses[-1])
    tail = losses[-min(5, len(losses) - 1):]
    drop, spread = first - tail.mean(), tail.std()
    note = f"Final training loss {first:.3g} at the first meta-iteration, {last:.3g} at the last"
    valid, test, error = (_last(data, k) for k in ("meta_valid_loss", "meta_test_loss", "meta_test_error"))
    if None not in (valid, test, error):
        note += f" (validation {valid:.3g}, test {test:.3g}, test error {error:.3g})"
    note += ("; the authors' Fig. 3 (their results.pkl is not in the mirror) goes from about 0.53 "
             "to 0.12, validation and test about 0.24. Rule: the mean of the last "
             f"{len(tail)} meta-iterations is below the first by more than 3 times their spread "
             f"(here {drop:.3g} against 3 x {spread:.2g}).")
    return last, f"{first:.3g} -> {last:.3g}", bool(_fell(losses)), note


def _held_out(data, name):
    """(mean, spread) of the final training loss of fixed schedule `name` ("ours", "authors",
    "ours_momentum_0.60", ...) on the held-out seeds, or None if the JSON has none."""
    if _maybe(data, "held_out", name, "final_loss") is None:
        return None
    return _number(data, "held_out", name, "final_loss"), _number(data, "held_out", name, "final_loss_std")


def _learned_vs_fixed(data):
    learned = _number(data, "learned_final_loss")
    learned_std = _number(data, "learned_final_loss_std")
    seeds = data.get("eval_seeds")
    n = f"{len(seeds)} held-out seeds" if isinstance(seeds, list) else "held-out seeds"
    ours, theirs = _held_out(data, "ours"), _held_out(data, "authors")
    if ours is not None and theirs is not None:
        better = "authors'" if theirs[0] < ours[0] else "our"
        fixed, fixed_std = min(ours, theirs)
        against = (f"the better of the two fixed-schedule optima, the {better} (Bayesian optimization: "
                   f"ours {ours[0]:.3g} +- {ours[1]:.2g}, the authors' Whetlab optimum (2.43, 0.60, "
                   f"0.196) {theirs[0]:.3g} +- {theirs[1]:.2g})")
    else:
        fixed, fixed_std = _number(data, "baseline_final_loss"), _number(data, "baseline_final_loss_std")
        against = f"the fixed schedule our Bayesian optimization chose {fixed:.3g} +- {fixed_std:.2g}"
    margin, spread = fixed - learned, max(learned_std, fixed_std)
    note = (f"Final training loss on {n} (new initial weights and minibatches): learned schedules "
            f"{learned:.3g} +- {learned_std:.2g}, against {against}")
    errors = _maybe(data, "final_test_error"), _maybe(data, "baseline_test_error")
    if None not in errors:
        note += f"; test error {errors[0]:.3g} learned, {errors[1]:.3g} our fixed"
    start = _maybe(data, "start_final_loss")
    note += (f". Rule: learned below fixed by more than the larger held-out spread (standard "
             f"deviation over seeds): margin {margin:.3g}, spread {spread:.2g}")
    if start is not None:
        note += f", and below the starting schedules' {start:.3g} on the same seeds."
        supports_start = learned < start
    else:
        note += ("; the JSON lacks the starting schedules' loss on these seeds (start_final_loss), "
                 "so learned is not compared with its start here (see the meta-learning curve).")
        supports_start = True
    search = data.get("baseline_search")
    runs = search.get("runs") if isinstance(search, dict) else None
    note += (f" Our fixed schedule came from {runs if isinstance(runs, int) else 'a search of'} "
             "evaluations (the authors' search ~100)")
    if theirs is None:
        note += ("; the authors' own Whetlab optimum (2.43, 0.60, 0.196) is not measured on these "
                 "seeds (the JSON lacks held_out.authors), though it has been reported to reach a "
                 "lower final loss than ours on fresh seeds.")
    else:
        note += "."
    return learned, f"{learned:.3g} vs {fixed:.3g}", margin > spread and supports_start, note


def _baseline_note(data):
    search = data.get("baseline_search")
    if not isinstance(search, dict) or not search:
        return "Our baseline is a grid search over one step size and momentum, not Bayesian optimization. "
    chosen = [_maybe(data, k) for k in ("baseline_step_size", "baseline_momentum", "baseline_init_scale")]
    chosen = ", ".join("?" if x is None else f"{x:.3g}" for x in chosen)
    rescored = search.get("rescored")
    if isinstance(rescored, dict) and isinstance(rescored.get("seeds"), list):
        how = (f"{search.get('runs')} training runs (theirs ~95-100), then its best "
               f"{rescored.get('top')} trained again on {len(rescored['seeds'])} fresh "
               f"seed{'s' if len(rescored['seeds']) != 1 else ''} and the "
               "best by mean kept")
    else:
        how = (f"{search.get('runs')} training runs (as many as the meta-optimization's "
               "hypergradients; theirs ~95-100), the best single run kept")
    return (f"Bayesian optimization ({search.get('method', '')}) over log step size, logit momentum "
            f"and log scale in the authors' Whetlab bounds, {how}. It chose step "
            f"size, momentum, scale {chosen} (authors: 2.43, 0.60, 0.196, "
            "their 7_adam_50_whetlab_init/experiment.py). ")


def _step_size(data):
    ours = _number(data, "baseline_step_size")
    if ours <= 0:
        raise Missing(f"baseline_step_size is {ours}, not positive")
    return ours, f"{ours:.3g}", abs(math.log(ours / 2.4)) <= math.log(1.5), \
        _baseline_note(data) + "Rule: within a factor 1.5 of 2.4."


def _baseline_momentum(data):
    """Supports if our search's momentum is within 0.15 of 0.60, or, the objective being flat
    in the momentum, if 0.60 does as well on the held-out seeds: the authors' optimum, or
    ours with its momentum set to 0.60, scores within one held-out spread of ours (or better)."""
    ours = _number(data, "baseline_momentum")
    note = _baseline_note(data)
    if abs(ours - 0.60) <= 0.15:
        return ours, f"{ours:.3g}", True, note + (
            "Rule: within 0.15 of 0.60, or 0.60 scores within one held-out spread of our optimum.")
    best, theirs, at_060 = (_held_out(data, k) for k in ("ours", "authors", "ours_momentum_0.60"))
    if best is None or (theirs is None and at_060 is None):
        return ours, f"{ours:.3g}", None, note + (
            f"Our momentum {ours:.3g} is not within 0.15 of 0.60; whether 0.60 does as well (the "
            "objective is flat in the momentum) is not measured: the JSON lacks held_out.ours and "
            "held_out.authors or held_out.ours_momentum_0.60 (final training losses on the held-out "
            "seeds). Rule: within 0.15 of 0.60, or 0.60 scores within one held-out spread of our optimum.")
    rows = [(f"the authors' optimum (2.43, 0.60, 0.196) {theirs[0]:.4g} +- {theirs[1]:.2g}", theirs)
            if theirs is not None else None,
            (f"ours with momentum 0.60 {at_060[0]:.4g} +- {at_060[1]:.2g}", at_060)
            if at_060 is not None else None]
    rows = [r for r in rows if r is not None]
    within = [text for text, (mean, std) in rows if mean - best[0] <= max(std, best[1])]
    supports = bool(within)
    note += (f"Final training loss on the held-out seeds: our optimum (momentum {ours:.3g}) "
             f"{best[0]:.4g} +- {best[1]:.2g}; " + "; ".join(text for text, _ in rows) + ". "
             + (f"Within one spread of ours or better: {', '.join(within)}, so momentum 0.60 is as "
                "good as the best our search found (the objective is flat in the momentum). "
                if supports else "Both are worse than ours by more than one spread. ")
             + "Rule: within 0.15 of 0.60, or 0.60 (the authors' optimum, or ours with momentum "
             "0.60) scores within one held-out spread (the larger standard deviation over seeds) "
             "of our optimum, or better.")
    return ours, f"{ours:.3g}", supports, note


def _baseline_scale(data):
    ours = _number(data, "baseline_init_scale")
    if ours <= 0:
        raise Missing(f"baseline_init_scale is {ours}, not positive")
    return ours, f"{ours:.3g}", abs(math.log(ours / 0.196)) <= math.log(1.5), \
        _baseline_note(data) + "Rule: within a factor 1.5 of 0.196."


def _init_scale(data):
    ours = _number(data, "learned_scales", "layer1_weights")
    if ours <= 0:
        raise Missing(f"learned_scales.layer1_weights is {ours}, not positive")
    heuristic = 1 / math.sqrt(784)
    blocks = _get(data, "blocks")
    if not isinstance(blocks, list) or "layer1_weights" not in blocks:
        raise Missing("blocks does not name layer1_weights")
    path = _array(data, "log_scales")
    if path.ndim != 2 or path.shape[1] != len(blocks):
        raise Missing("log_scales is not one row of log scales per meta-iteration, one per block "
                      "(the starting scale, its first row, is what the rule measures from)")
    path = np.exp(path[:, blocks.index("layer1_weights")])
    start = float(path[0])
    if abs(math.log(start / heuristic)) < 1e-6:
        raise Missing("the starting scale is the heuristic itself: no movement to measure")
    moved, ratio = _scale_moved(start, ours, heuristic)
    note = (f"From {start:.3f} (the start, e^{math.log(start):.1f}) to {ours:.3g} = {ratio:.2f} times "
            f"1/sqrt(784) = {heuristic:.3f}: {moved:.0%} of the way to the heuristic in log scale "
            "(the paper: 0.050 to about 0.045, 1.26 times, about 30%).")
    if len(path) > 5:
        change = path[-1] / path[-6] - 1
        note += f" It moved {change:+.0%} over the last 5 meta-iterations" + (
            ", so it had not settled." if abs(change) > 0.02 else ".")
    raw = _maybe(data, "ablations", "raw_pixels", "layer1_weight_scale")
    raw_loss = _maybe(data, "ablations", "raw_pixels", "final_train_loss")
    if raw is not None and raw_loss is not None:
        read = _get(data, "ablations", "raw_pixels").get("layer1_weight_scale_read")
        lowest = _maybe(data, "ablations", "raw_pixels", "lowest_meta_loss")
        if isinstance(read, str) and lowest is not None:
            final = _maybe(data, "ablations", "raw_pixels", "layer1_weight_scale_final")
            when = (f"read {read}, final training loss {lowest:.3g} there; {raw_loss:.3g} at the "
                    f"last meta-iteration" + ("" if final is None else f", where the scale was {final:.3g}"))
        else:
            when = (f"read at the last meta-iteration, final training loss {raw_loss:.3g}: if the "
                    "meta-optimization diverged, this is the value after the divergence (this JSON "
                    "does not say where the meta-loss was lowest)")
        note += (f" Ablation, raw (uncentred) pixels, all else the authors': {raw:.3g} "
                 f"({raw / heuristic:.2f} times; {when}), " + (
                     "so the result depends on the authors' mean-centring." if abs(math.log(raw / ours))
                     > math.log(1.5) else "within a factor 1.5 of the centred run's."))
    supports = moved >= 0.2 and 1 / 1.5 <= ratio <= 1.5
    return ours, f"{start:.3f} -> {ours:.3g}", supports, note + (
        " Rule: it moved at least a fifth of the way from the start towards the heuristic (in log "
        "scale) and ends within a factor 1.5 of it (the start alone, 1.39 times, is inside that band).")


def _authors_hypergradient(data):
    comparison = _get(data, "authors_comparison")
    if not isinstance(comparison, dict) or not comparison:
        raise Missing(f"authors_comparison is {_short(comparison)}, not a comparison per hyperparameter")
    rel = _number(data, "authors_comparison", "d_log_alphas", "relative_difference")
    corr = _number(data, "authors_comparison", "d_log_alphas", "correlation")
    others = {k: _number(data, "authors_comparison", k, "relative_difference") for k in comparison}
    text = ", ".join(f"{k}: {v:.1e}" for k, v in others.items())
    return rel, f"{rel:.1e}", rel <= 1e-2, (
        f"Our mean hypergradient over their 50 seeds against the one in their "
        f"5_initial_gradient/results.pkl: correlation 1 - {1 - corr:.1e}; relative differences {text}. "
        "Same data, draws and starting point, so this checks the setting and the exact "
        "reversal end to end. Rule: relative difference at most 1e-2.")


# --- Figure 8 (the Omniglot alphabets) -------------------------------------------------------

def _alphabets(data):
    matches = _get(data, "paper_figure_matches")
    if not isinstance(matches, list) or len(matches) != 10:
        raise Missing("paper_figure_matches does not hold the 10 rows of the paper's Fig. 8 "
                      "(the notebook skips the matching when the paper's figure is absent)")
    names, margins = [], []
    for r in range(10):
        name = _get(data, "paper_figure_matches", r, "alphabet")
        if not isinstance(name, str):
            raise Missing(f"paper_figure_matches[{r}].alphabet is {_short(name)}, not a name")
        names.append(name)
        margins.append(_number(data, "paper_figure_matches", r, "score")
                       - _number(data, "paper_figure_matches", r, "runner_up_score"))
    tasks = _get(data, "tasks")
    if not isinstance(tasks, list) or len(tasks) < 5 or not all(isinstance(t, str) for t in tasks):
        raise Missing(f"tasks is {_short(tasks)}, not the names of the tasks")
    used = tasks[:5]
    supports = names[:5] == names[5:] and len(set(names[:5])) == 5 and min(margins) >= 0.1 \
        and used == names[:5]
    short = [n.split("_(")[0].replace("N_Ko", "N'Ko") for n in names[:5]]
    return min(margins), ", ".join(short), supports, (
        f"Each of the 10 rows of the paper's Fig. 8 (its glyphs cropped from the figure) matched "
        f"against every Omniglot drawing in 8 orientations: best alphabet by at least "
        f"{min(margins):.2f} in mean cosine similarity over the next best; rows 6-10 "
        f"{'match' if names[:5] == names[5:] else 'do not match'} rows 1-5; the tasks of Figs. 8-9 "
        f"{'are' if used == names[:5] else 'are not'} these five. Rule: five distinct alphabets, "
        "each row by a margin of at least 0.10, the bottom rows the same as the top, and the tasks "
        "the same five.")


# --- Figure 9 and table (Omniglot) ------------------------------------------------------

OMNIGLOT_PAPER = {("separate", "train"): 0.61, ("separate", "test"): 1.34,
                  ("tied", "train"): 0.90, ("tied", "test"): 1.25,
                  ("learned", "train"): 0.60, ("learned", "test"): 1.13}


def _omniglot_loss(data, model, part):
    """A loss of the JSON: a number, or per-task numbers (their mean)."""
    value = _get(data, model, f"{part}_loss")
    if isinstance(value, list):
        return float(np.mean(_array(data, model, f"{part}_loss")))
    return _finite(value, f"{model}.{part}_loss")


def _omniglot_spread(data, model, part):
    """The standard deviation over final trainings of a loss, if the JSON has one (else None)."""
    std = _maybe(data, model, f"{part}_loss_std")
    return None if std is None or _omniglot_runs(data) < 2 else std


def _omniglot_runs(data):
    """How many final trainings the losses average (older JSON: one per replicate)."""
    n = data.get("n_runs", data.get("n_replicates", 1))
    return n if isinstance(n, int) and n >= 1 else 1


def _omniglot_runs_text(data):
    """'N final trainings', and from how many meta-learning runs when there were several."""
    n, reps = _omniglot_runs(data), data.get("n_replicates", 1)
    reps = reps if isinstance(reps, int) and reps >= 1 else 1
    return f"{n} final trainings" + (f" ({reps} meta-learning runs x {n // reps})" if reps > 1 else "")


def _fell(curve):
    """Whether a meta-learning curve (validation or training loss per meta-iteration) fell:
    the mean of its last min(5, n - 1) values below the first by more than 3 times their spread."""
    tail = curve[-min(5, len(curve) - 1):]
    return len(curve) >= 2 and curve[0] - tail.mean() > 3 * tail.std()


def _sharing_learned(data, test_loss=None):
    """(learned, note): whether meta-learning lowered the validation loss of every meta-learning
    run of the sharing (meta_valid_loss: one curve per run), and, where the JSON has the
    starting sharing's final trainings (start.test_loss), whether the learned test loss is
    below the start's. The learned sharing starts at c = 0.5, not at separate networks, so
    "learned beats separate" alone would not show that anything was learned."""
    curves = _get(data, "meta_valid_loss")
    if not isinstance(curves, list) or not curves:
        raise Missing("meta_valid_loss is not a list of meta-learning curves")
    arrays = ([_array(data, "meta_valid_loss", r) for r in range(len(curves))]
              if isinstance(curves[0], list) else [_array(data, "meta_valid_loss")])
    fell = all(_fell(a) for a in arrays)
    note = (" Learning: the validation loss went from " + ", ".join(f"{a[0]:.2f}" for a in arrays)
            + " (the starting sharing, c = 0.5 in every layer) to "
            + ", ".join(f"{a[-1]:.2f}" for a in arrays)
            + f" over the meta-iterations of the {len(arrays)} meta-learning run(s); the rule also "
            "needs it to have fallen in every run (the mean of the last 5 below the first by more "
            "than 3 times their spread)")
    start = _maybe(data, "start", "test_loss")
    if start is None:
        note += ("; the JSON lacks the starting sharing's test loss (start.test_loss), so the "
                 "learned sharing is not compared with its start on test.")
        return fell, note
    note += f"; and the learned test loss to be below the start's {start:.2f}."
    return fell and (test_loss is None or test_loss < start), note


def _omniglot_number(model, part):
    def measure(data):
        ours, paper = _omniglot_loss(data, model, part), OMNIGLOT_PAPER[model, part]
        std = _omniglot_spread(data, model, part)
        off = ours / paper - 1
        text = f"{ours:.2f}" if std is None else f"{ours:.2f} +- {std:.3f}"
        learned, learning = (True, "") if (model, part) != ("learned", "test") else \
            _sharing_learned(data, ours)
        return ours, text, abs(off) <= 0.10 and learned, learning.lstrip() + (" " if learning else "") + (
            f"{off:+.1%} against the paper (rule: within 10%"
            + ("" if std is None else f"; +- is the spread over {_omniglot_runs_text(data)}")
            + "; absolute losses depend on the 12 / 3 split and the 28x28 downsampling; the "
            "gains over separate networks are judged in their own rows).")
    return measure


def _omniglot_gain(model):
    """The test-loss gain of `model` over separate networks, against the paper's."""
    def measure(data):
        s, m = _omniglot_loss(data, "separate", "test"), _omniglot_loss(data, model, "test")
        paper = OMNIGLOT_PAPER["separate", "test"] - OMNIGLOT_PAPER[model, "test"]
        gain = s - m
        stds = [_omniglot_spread(data, k, "test") for k in ("separate", model)]
        spread = None if None in stds else max(stds)
        note = (f"Test loss of separate networks minus {model}'s: {gain:+.3f} (paper "
                f"{OMNIGLOT_PAPER['separate', 'test']:.2f} - {OMNIGLOT_PAPER[model, 'test']:.2f} = "
                f"{paper:+.2f}). Rule: at least half the paper's gain, and more than the larger spread "
                "of the two test losses over final trainings")
        note += (f" ({spread:.3f} over {_omniglot_runs_text(data)})." if spread is not None
                 else " (not measured here: one final training).")
        supports = gain >= paper / 2 and (spread is None or gain > spread)
        if model == "learned":
            learned, learning = _sharing_learned(data, m)
            supports, note = supports and learned, note + learning
        return gain, f"{gain:+.2f} ({s:.2f} - {m:.2f})", supports, note
    return measure


def _omniglot_test_order(data):
    s, t, l = (_omniglot_loss(data, m, "test") for m in ("separate", "tied", "learned"))
    learned, learning = _sharing_learned(data, l)
    return l, f"{l:.2f} < {t:.2f} < {s:.2f}" if l < t < s else \
        f"learned {l:.2f}, tied {t:.2f}, separate {s:.2f}", l < t < s and learned, \
        "Rule: learned < tied < separate, as in the paper." + learning


def _omniglot_learned_best(data):
    s, t, l = (_omniglot_loss(data, m, "test") for m in ("separate", "tied", "learned"))
    note = "Rule: learned sharing has the lowest test loss of the three."
    stds = [_omniglot_spread(data, m, "test") for m in ("separate", "tied", "learned")]
    if None not in stds:
        margin = min(s, t) - l
        note += (f" Its margin {margin:.2f} is {'more' if margin > max(stds) else 'less'} than "
                 f"the largest spread over its {_omniglot_runs_text(data)} ({max(stds):.3f}).")
    learned, learning = _sharing_learned(data, l)
    return l, f"learned {l:.2f}, separate {s:.2f}, tied {t:.2f}", l < min(s, t) and learned, note + learning


def _omniglot_reparametrization(data):
    """Our ablation (not in the paper): on the same networks and data, does learned
    sharing by reparametrization (the authors' method) gain more over separate networks
    than learned sharing by a coupling penalty (this repository's earlier method)?"""
    r, p = _number(data, "ablation", "reparam_learned", 1), _number(data, "ablation", "penalty_learned", 1)
    rs, ps = _number(data, "ablation", "reparam_separate", 1), _number(data, "ablation", "penalty_separate", 1)
    sizes = data.get("ablation_sizes") if isinstance(data.get("ablation_sizes"), dict) else {}
    reparam_curve = _array(data, "meta_valid_loss", 0)          # the main run's first meta-learning
    penalty_curve = _array(data, "ablation_meta_valid_loss")
    learned = _fell(reparam_curve) and _fell(penalty_curve)
    return r, f"reparam {r:.2f}, penalty {p:.2f} (separate {rs:.2f} / {ps:.2f})", \
        rs - r > max(ps - p, 0) and learned, (
        "Rule: the learned reparametrization gains more test loss over separate networks than "
        f"the learned penalty does, and gains at all: reparametrization {rs - r:+.2f}, penalty "
        f"{ps - p:+.2f}; and meta-learning lowered both validation losses (reparametrization "
        f"{reparam_curve[0]:.2f} -> {reparam_curve[-1]:.2f}, penalty {penalty_curve[0]:.2f} -> "
        f"{penalty_curve[-1]:.2f}; the mean of the last 5 below the first by more than 3 times "
        f"their spread). Networks {sizes.get('layer_sizes', '?')}, "
        f"{sizes.get('meta_iters', '?')} meta-iterations each, one final training each.")


def _omniglot_train_order(data):
    s, t, l = (_omniglot_loss(data, m, "train") for m in ("separate", "tied", "learned"))
    return t, f"learned {l:.2f}, separate {s:.2f}, tied {t:.2f}", t > max(s, l), \
        "Rule: tying the first layer gives the highest training loss."


# --- Figure 10 (chaos) ------------------------------------------------------------------

def chaos_onset(log_alphas, hypergradients, window=5, changes=2):
    """Where the hypergradient's sign changes become frequent: the midpoint of the first
    pair of neighbouring grid points whose hypergradients differ in sign and which starts
    `window` neighbouring pairs of which at least `changes` differ in sign. A NaN (a
    diverged run) counts as a change. None if that never happens."""
    a, h = np.asarray(log_alphas, dtype=float), np.asarray(hypergradients, dtype=float)
    flips = ~(np.sign(h[1:]) == np.sign(h[:-1]))        # NaN compares unequal: a flip
    for i in np.flatnonzero(flips):
        if flips[i:i + window].sum() >= changes:
            return float((a[i] + a[i + 1]) / 2)
    return None


def _chaos(data, window=5):
    log_alphas = _array(data, "log_alphas")
    hypergradients = _array(data, "hypergradients", finite=False)
    if len(hypergradients) != len(log_alphas) or len(log_alphas) < 2:
        raise Missing("log_alphas and hypergradients do not have one entry per grid point")
    hypergradients[~np.isfinite(hypergradients)] = np.nan       # infinite: diverged as well
    if not np.all(np.isfinite(hypergradients[:window + 1])):
        raise Missing(f"the runs at the {window + 1} smallest step sizes did not all finish "
                      f"({int(np.sum(~np.isfinite(hypergradients)))} of {len(log_alphas)} diverged or "
                      "failed): no smooth region was measured, so no onset of chaos can be placed")
    onset = chaos_onset(log_alphas, hypergradients, window=window)
    note = ("Rule: the first sign change of the hypergradient between neighbouring grid "
            "points that is followed by another within 5 pairs; supports if within 0.25 of "
            f"1.5 (grid spacing {np.mean(np.diff(log_alphas)):.2g}). The same rule on the "
            "authors' own sweep (results.pkl of experiments/Jan_14_learning_rate_wiggliness/3, "
            "1,000 points) gives 1.47.")
    own = _maybe(data, "chaos_onset_log_alpha")
    if own is not None:
        note += (f" The notebook's own rule (finite differences stop matching the "
                 f"hypergradient) gives {own:.2f}.")
    if onset is None:
        return None, f"none up to {np.max(log_alphas):.2f}", False, note
    return onset, f"{onset:.2f}", abs(onset - 1.5) <= 0.25, note


# The authors' own sweep (results.pkl of experiments/Jan_14_learning_rate_wiggliness/3, grid
# linspace(0.5, 2.5, 1000)): final training loss and d loss / d log step size at points of
# the smooth region that every coarser grid of ours (every k-th point) contains.
AUTHORS_CHAOS = {0.5: (0.028806, -0.062098), 1.0005005: (0.0095684, -0.020635),
                 1.3008008: (0.0050833, -0.0095140)}


def _chaos_same_run(data):
    a = _array(data, "log_alphas")
    losses, slopes = (_array(data, k, finite=False) for k in ("losses", "hypergradients"))
    if not len(a) == len(losses) == len(slopes):
        raise Missing("log_alphas, losses and hypergradients do not have one entry per grid point")
    offs = []
    for point, (loss, slope) in AUTHORS_CHAOS.items():
        i = int(np.argmin(np.abs(a - point)))
        if abs(a[i] - point) > 1e-6:
            raise Missing(f"lacks the authors' grid point {point} in log_alphas")
        for name, ours in (("losses", losses[i]), ("hypergradients", slopes[i])):
            if not np.isfinite(ours):
                raise Missing(f"{name} at log step size {point:.3g} is not finite (the run diverged)")
        offs += [losses[i] / loss - 1, slopes[i] / slope - 1]
    worst = float(np.max(np.abs(offs)))
    return worst, f"largest difference {worst:.2%}", worst <= 0.01, (
        "Our final training losses and hypergradients at log step sizes 0.5, 1.0, 1.3 against "
        "the authors' own run (results.pkl of experiments/Jan_14_learning_rate_wiggliness/3; "
        "rule: all within 1%, i.e. the same experiment).")


# --- Figures 6 and 7 (hyperparameters inside the training run) ---------------------------

def _penalty_scale(data):
    penalties = np.exp(_array(data, "log_penalties")).ravel()
    top, low = np.percentile(penalties, 98.0), np.percentile(penalties, 2.0)
    supports = f"{top:.2f}" == "0.03" and low <= top / 5
    note = (f"The learned penalties of the {penalties.size:,} weights: 98th percentile {top:.3f} (the "
            f"top of Fig. 6's colour scale, which the authors print with 2 decimals), 2nd percentile "
            f"{low:.4f}, median {np.median(penalties):.3f}.")
    start = _maybe(data, "log_penalty0")
    if start is None:
        note += (" The JSON lacks the starting penalty (log_penalty0; the notebook starts every "
                 "penalty at exp(-3.6052) = 0.0272, whose 2 decimals are already 0.03), so the "
                 "rise above the start is not measured.")
    else:
        start = math.exp(start)
        note += (f" All started at {start:.4f}, which already prints as {start:.2f}: "
                 f"{np.mean(penalties > start * 1.001):.0%} rose above it and "
                 f"{np.mean(penalties < start / 1.001):.0%} fell.")
    return top, f"{low:.4f} to {top:.3f}", supports, note + (
        " Rule: the top prints as 0.03 and learning spread the penalties over the scale: the 2nd "
        "percentile is below a fifth of the top (uniform penalties, as at the start, fail).")


def _image_range(data):
    if "learned_images" in data:
        images = _array(data, "learned_images")
        low, high = float(images.min()), float(images.max())
    else:
        low, high = _number(data, "colour_range", 0), _number(data, "colour_range", 1)
    ok = abs(low / -0.30 - 1) <= 0.25 and abs(high / 0.33 - 1) <= 0.25
    return high, f"{low:.2f} to {high:.2f}", ok, (
        "Smallest and largest pixel of the learned training images, the ends of Fig. 7's "
        "colour scale; learning starts from blank (all-zero) images. Rule: both within 25% of the "
        "paper's -0.30 and 0.33.")


# --- learned preprocessing and augmentation (our extension; data_augmentation.json) --------

AUGMENTATION_BASELINES = ("none", "mean_centring", "standardization", "hand_made")


def _beats_baselines(learned, label):
    """Our extension: the learned setting's test loss is below the best baseline's by more than
    the larger spread (standard deviation over the evaluation seeds) of the two."""
    def measure(data):
        ours, ours_std = _number(data, "test_loss", learned), _number(data, "test_loss_std", learned)
        losses = {b: _number(data, "test_loss", b) for b in AUGMENTATION_BASELINES}
        best = min(losses, key=losses.get)
        best_std = _number(data, "test_loss_std", best)
        margin, spread = losses[best] - ours, max(ours_std, best_std)
        seeds = data.get("eval_seeds")
        n = len(seeds) if isinstance(seeds, list) else None
        note = (f"Test loss over {n if n is not None else 'the'} evaluation seeds: learned "
                f"{label} {ours:.4f} +- {ours_std:.4f}; baselines "
                + ", ".join(f"{b.replace('_', ' ')} {v:.4f}" for b, v in losses.items())
                + f"; the best, {best.replace('_', ' ')}, {losses[best]:.4f} +- {best_std:.4f}. "
                f"Margin {margin:+.4f} against the spread {spread:.4f}.")
        valid = _maybe(data, "valid_loss", learned), _maybe(data, "valid_loss", "none")
        if None not in valid:
            test_gain = losses["none"] - ours
            note += (f" Against no preprocessing or augmentation the validation loss it was fitted to fell by "
                     f"{valid[1] - valid[0]:.4f}, the test loss by {test_gain:.4f}.")
        if n is not None and n < 5:
            note += f" Only {n} evaluation seeds (the notebook runs 5 at paper scale)."
        return margin, f"{ours:.3f} vs {losses[best]:.3f} ({best.replace('_', ' ')})", margin > spread, note + (
            " Our extension: the paper names these experiments but reports no number. Rule: below "
            "the best of no preprocessing, mean-centring, standardization and random shifts by more "
            "than the larger standard deviation over seeds.")
    return measure


# --- Figs. 2, 3, 5 from other random draws (schedules_other_draws.json; our ablation) ---------

def _draw_runs(data):
    """{seed: run} of schedules_other_draws.json, the reference (the authors' draws) first;
    Missing unless it holds the reference and at least one other draw."""
    runs, reference = _get(data, "runs"), _get(data, "reference")
    if not isinstance(reference, str):
        raise Missing(f"reference is {_short(reference)}, not the seed (a string) of the authors' draws")
    if not isinstance(runs, dict) or reference not in runs or len(runs) < 2:
        raise Missing(f"runs is {_short(runs)}: it needs the reference draws ({reference!r}) and at "
                      "least one other")
    return {reference: runs[reference], **{k: v for k, v in runs.items() if k != reference}}


def _persists(features, what):
    """(ours, text, supports, note) from {seed: (holds, description)}: supports only if the
    feature holds for every draw; the note lists each draw and which ones it fails."""
    failed = [seed for seed, (holds, _) in features.items() if not holds]
    n = len(features)
    note = "; ".join(f"{seed}: {text}" for seed, (_, text) in features.items())
    verdict = (f"It holds for all {n} draws." if not failed else
               f"It fails for {len(failed)} of {n} draws ({', '.join(failed)}).")
    return float(n - len(failed)), f"{n - len(failed)} of {n} draws", not failed, (
        f"{what} {verdict} Per draw (seed offset s: meta-iteration i trains from s + i; 0 is the "
        f"authors'): {note}.")


def _draws_peak(data):
    T = int(_number(data, "T"))
    early = int(_number(data, "early_steps"))
    blocks = _get(data, "blocks")
    if not isinstance(blocks, list) or "layer4_weights" not in blocks:
        raise Missing("blocks does not name layer4_weights")
    features = {}
    for seed in _draw_runs(data):
        alphas = _array(data, "runs", seed, "alphas")
        if alphas.shape != (T, len(blocks)):
            raise Missing(f"runs.{seed}.alphas is not T x blocks")
        a = alphas[:, blocks.index("layer4_weights")]
        step, late = int(np.argmax(a)), float(np.median(a[T // 2:]))
        ratio = a[step] / late
        features[seed] = (step < early and ratio >= 2,
                          f"peak {a[step]:.2f} at step {step}, {ratio:.1f} times the second half's median")
    return _persists(features, (
        f"The layer-4 weights' learned step size peaks early, as in Fig. 2 from the authors' draws. "
        f"Rule: for every draw, the largest step size is in the first {early} of {T} steps and at "
        "least twice the median of the second half (a constant schedule, the start, is not)."))


def _scale_moved(start, ours, heuristic):
    """(moved, ratio): the fraction of the way (in log scale) a scale moved from its start
    towards the heuristic, and where it ended as a multiple of the heuristic."""
    return 1 - abs(math.log(ours / heuristic)) / abs(math.log(start / heuristic)), ours / heuristic


def _draws_scale(data):
    heuristic, start = _number(data, "heuristic_layer1_scale"), _number(data, "start_scale")
    blocks = _get(data, "blocks")
    if not isinstance(blocks, list) or "layer1_weights" not in blocks:
        raise Missing("blocks does not name layer1_weights")
    if heuristic <= 0 or start <= 0 or abs(math.log(start / heuristic)) < 1e-6:
        raise Missing("the starting scale or the heuristic is not a positive number apart from the other")
    features = {}
    for seed in _draw_runs(data):
        path = np.exp(_array(data, "runs", seed, "log_scales")[:, blocks.index("layer1_weights")])
        moved, ratio = _scale_moved(float(path[0]), float(path[-1]), heuristic)
        features[seed] = (moved >= 0.2 and 1 / 1.5 <= ratio <= 1.5,
                          f"{path[-1]:.4f} ({ratio:.2f} times 1/sqrt(784), {moved:.0%} of the way)")
    return _persists(features, (
        f"The layer-1 weight scale moves from the start {start:.3f} towards 1/sqrt(784) = "
        f"{heuristic:.3f}, as in Fig. 5. Rule (the Fig. 5 row's): for every draw it moved at least a "
        "fifth of the way in log scale and ends within a factor 1.5 of the heuristic."))


def _draws_loss(data):
    runs = _draw_runs(data)
    reference = _get(data, "reference")
    start, start_std = _number(data, "start", "final_loss"), _number(data, "start", "final_loss_std")
    ref = _number(data, "runs", reference, "held_out", "final_loss")
    ref_std = _number(data, "runs", reference, "held_out", "final_loss_std")
    features = {}
    for seed in runs:
        m = _number(data, "runs", seed, "held_out", "final_loss")
        sd = _number(data, "runs", seed, "held_out", "final_loss_std")
        beats = start - m > max(sd, start_std)
        near = seed == reference or abs(m - ref) <= max(sd, ref_std)
        features[seed] = (beats and near, f"{m:.4f} +- {sd:.4f}" + (
            "" if beats else ", not below the start by more than the spread") + (
            "" if near else f", {m - ref:+.4f} from the authors' draws, more than the spread"))
    seeds = data.get("eval_seeds")
    n = len(seeds) if isinstance(seeds, list) else "?"
    return _persists(features, (
        f"The learned schedules' final training loss on {n} held-out seeds (the same for every draw; "
        f"the start: {start:.4f} +- {start_std:.4f}). Rule: every draw's learned schedules beat the "
        "start by more than the spread (the larger standard deviation over the held-out seeds), and "
        "every other draw is within the spread of the authors' draws."))


NOT_LEARNED = {
    "buffer": "the buffer's size, measured by running exact reversal alone; nothing is learned",
    "memory": "the memory of one hypergradient; nothing is learned",
    "time": "a timing; nothing is learned",
    "search": "a search over fixed schedules without hypergradients; nothing is learned by them",
    "initial": "the hypergradient at the starting hyperparameters, before any learning",
    "identified": "which alphabets the paper's figure shows; nothing is learned",
    "fixed": "a fixed baseline (separate or tied networks, hyperparameters not learned)",
    "learned_train": "the paper's learned training loss (0.60) is its separate one (0.61): "
                     "learning is not claimed to move it, and separate networks' 0.62 passes too",
    "sweep": "a sweep of fixed step sizes; nothing is learned",
    "data_sweep": "a sweep of fixed data choices (drawers, downsampling) for separate networks; "
                  "nothing is learned",
}


# --- Omniglot data choices (issue 19, item 5) -----------------------------------------------

def _sweep_rows(data):
    """(name, principled, downsampling, drawers, test losses (n,), train losses (n,)) per
    variant of omniglot_sweep.json; Missing when a variant lacks one of them."""
    variants = _get(data, "variants")
    if not isinstance(variants, list) or not variants:
        raise Missing("variants is not a non-empty list of variants")
    rows = []
    for i in range(len(variants)):
        principled = _get(data, "variants", i, "principled")
        if not isinstance(principled, bool):
            raise Missing(f"variants[{i}].principled is {_short(principled)}, not true or false")
        names = [_get(data, "variants", i, k) for k in ("downsampling", "drawers")]
        if not all(isinstance(n, str) for n in names):
            raise Missing(f"variants[{i}] does not name its downsampling and drawers")
        rows.append((" / ".join(names), principled, *names, _array(data, "variants", i, "test_loss"),
                     _array(data, "variants", i, "train_loss")))
    return rows


def _factor_range(rows, keep):
    means = [r[4].mean() for r in rows if keep(r)]
    return (max(means) - min(means)) if len(means) > 1 else None


def _omniglot_sweep_reachable(data):
    """Is the paper's separate test loss, 1.34, reachable by a principled data choice? The
    lowest mean test loss over splits of the variants with a principled (antialiased)
    downsampling, within its spread over splits (at least the paper's rounding, 0.005)."""
    rows = _sweep_rows(data)
    principled = [r for r in rows if r[1]]
    if not principled:
        raise Missing("no variant with a principled downsampling")
    best = min(principled, key=lambda r: r[4].mean())
    mean, std, paper = best[4].mean(), best[4].std(), OMNIGLOT_PAPER["separate", "test"]
    supports = mean - paper <= max(std, 0.005)
    base = [r for r in rows if (r[2], r[3]) == ("area", "seed0")]
    by_routine = _factor_range(rows, lambda r: r[1] and r[3] == "seed0")
    by_drawers = _factor_range(rows, lambda r: r[2] == "area")
    note = (f"Best of {len(principled)} principled variants: {best[0]}, test {mean:.3f} +- {std:.3f} "
            f"over {len(best[4])} split(s), train {best[5].mean():.3f} (paper 0.61 / 1.34)")
    if base:
        note += f"; fig9's choice (area / seed0) {base[0][4].mean():.3f}"
    note += "; the mean test loss moves by " + ", ".join(
        f"{v:.3f} over {what}" for v, what in ((by_routine, "principled downsamplings (drawers seed0)"),
                                               (by_drawers, "drawer choices (area)")) if v is not None)
    note += (". Rule: the best mean within its spread over splits (at least 0.005, the paper's "
             "rounding) of 1.34; it is the best of several variants scored on test, so a "
             "'supports' is an upper bound on what a principled choice gives.")
    return mean, f"{mean:.2f} +- {std:.3f} ({best[0]})", supports, note

# --- reversible Adam (our extension, not a claim of the paper) ----------------------------

def _adam_schedules(data):
    """Learned Adam schedules against the best constant one, on the same held-out seeds:
    supports only if the learned schedule with the lowest meta-objective (chosen without the
    held-out seeds) has a mean final training loss below the constant's by more than the
    spread (the larger standard deviation over seeds)."""
    held = _get(data, "held_out")
    if not isinstance(held, dict):
        raise Missing(f"held_out is {_short(held)}, not a JSON object")
    learned = [k for k in held if "/" in k]           # start/parametrization/meta-optimizer
    if not learned:
        raise Missing("held_out has no learned schedule (no 'start/parametrization/method' entry)")
    means = {k: _number(data, "held_out", k, "mean") for k in learned}
    # Choose the learned schedule by its own meta-objective (the final training loss on the
    # meta-learning seeds at its last meta-iteration), never by the held-out seeds that judge it.
    meta = {}
    for k in learned:
        last = _get(data, "records", k, "loss")
        if not isinstance(last, list) or not last or not isinstance(last[-1], list) or not last[-1]:
            raise Missing(f"records.{k}.loss holds no meta-learning losses")
        meta[k] = sum(_finite(x, f"records.{k}.loss") for x in last[-1]) / len(last[-1])
    best = min(learned, key=meta.get)
    b_std = _number(data, "held_out", best, "std")
    c_mean, c_std = (_number(data, "held_out", "best_constant", q) for q in ("mean", "std"))
    margin, spread = c_mean - means[best], max(b_std, c_std)
    seeds = _get(data, "held_out", "seeds")
    note = (f"Best of {len(learned)} learned schedules ({best}) {means[best]:.4f} +- {b_std:.4f}, "
            f"best constant {c_mean:.4f} +- {c_std:.4f} on {len(seeds) if isinstance(seeds, list) else '?'} "
            f"held-out seeds: margin {margin:+.4f}, spread {spread:.4f}. The learned schedule judged is the one "
            f"with the lowest meta-objective on its own meta-learning seeds ({meta[best]:.4f}), not chosen "
            "on the held-out seeds. Rule: margin > spread (the larger standard deviation over seeds).")
    recovery = data.get("recovery")
    for name in recovery if isinstance(recovery, dict) else []:
        closed = _maybe(data, "recovery", name, "gap_closed")
        if closed is not None:
            note += f" Positive control {name}: {closed:.0%} of the gap from the poor start to the best constant closed."
    frozen = _maybe(data, "frozen_weights", "frozen")
    if frozen is not None:
        note += f" Frozen weights in a check run: {frozen:.0f}."
    return margin, f"learned {means[best]:.3f}, constant {c_mean:.3f}", margin > spread, note


CLAIMS = [
    Claim("toy_meta_learning_authors", "Fig. 1's three meta-iterations are the authors' run: final "
          "loss of each", "their results.pkl: 395.30, 356.57, 356.34", "fig1_toy_meta_learning",
          _toy_meta_losses),
    Claim("bits_gamma_0.9", "Bits per parameter per step exact reversal keeps at gamma = 0.9",
          "0.152", "memory_comparison", _bits(0.9, 0.152), NOT_LEARNED["buffer"]),
    Claim("memory_factor_gamma_0.9", "Memory saved against storing 32-bit values, gamma = 0.9",
          "200x", "memory_comparison", _factor(0.9, 200, 0.05), NOT_LEARNED["buffer"]),
    Claim("bits_gamma_0.98", "Bits per parameter per step exact reversal keeps at gamma = 0.98",
          "0.029", "memory_comparison", _bits(0.98, 0.029), NOT_LEARNED["buffer"]),
    Claim("memory_factor_gamma_0.98", "Memory saved against storing 32-bit values, gamma = 0.98",
          "~1000x", "memory_comparison", _factor(0.98, 1000, 0.10), NOT_LEARNED["buffer"]),
    Claim("memory_whole_hypergradient", "A whole hypergradient by exact reversal needs less memory "
          "than naive reverse mode (the stored trajectory) and checkpointing",
          "less than both (text; no figure)", "memory_comparison", _memory_whole, NOT_LEARNED["memory"]),
    Claim("hypergradient_cost", 'A hypergradient comes "at about the cost of training twice"',
          "~2x", "fig3_learning_curves", _cost, NOT_LEARNED["time"]),
    Claim("meta_learning_curve", "Meta-learning lowers the final training loss (Fig. 3)",
          "decreasing", "fig3_learning_curves", _meta_curve),
    Claim("learned_vs_fixed_schedule", "Learned schedules beat the best fixed schedule found "
          "without gradients, on held-out seeds", "learned < fixed", "fig3_learning_curves",
          _learned_vs_fixed),
    Claim("baseline_step_size", "Best fixed step size found without gradients (Fig. 5 text)",
          "2.4", "fig3_learning_curves", _step_size, NOT_LEARNED["search"]),
    Claim("baseline_momentum", "Best fixed momentum found without gradients (authors' Whetlab run)",
          "0.60", "fig3_learning_curves", _baseline_momentum, NOT_LEARNED["search"]),
    Claim("baseline_init_scale", "Best fixed initialization scale found without gradients (authors' Whetlab run)",
          "0.196", "fig3_learning_curves", _baseline_scale, NOT_LEARNED["search"]),
    Claim("initial_hypergradient_authors", "Initial hypergradient averaged over seeds (Fig. 4) equals the authors'",
          "their results.pkl", "fig4_initial_hypergradient", _authors_hypergradient, NOT_LEARNED["initial"]),
    Claim("init_scale_layer1", "Learned layer-1 weight scale moves from e^-3 = 0.050 to near "
          "1/sqrt(784) = 0.036 (Fig. 5)", "0.050 -> 0.045", "fig5_init_scales", _init_scale),
    Claim("other_draws_layer4_peak", "Other random draws (our ablation): the early peak of the "
          "layer-4 step size persists", "Fig. 2 (authors' draws only)", "schedules_other_draws", _draws_peak),
    Claim("other_draws_layer1_scale", "Other random draws (our ablation): the layer-1 weight scale "
          "still moves to near 1/sqrt(784)", "Fig. 5 (authors' draws only)", "schedules_other_draws",
          _draws_scale),
    Claim("other_draws_final_loss", "Other random draws (our ablation): the learned schedules reach "
          "the same final training loss", "Fig. 3 (authors' draws only)", "schedules_other_draws",
          _draws_loss),
    Claim("omniglot_alphabets", "Fig. 8 shows five Omniglot alphabets, each upright and rotated",
          "5 alphabets x 2 (not named)", "fig8_omniglot_alphabets", _alphabets, NOT_LEARNED["identified"]),
    Claim("omniglot_learned_best", "Omniglot: learned sharing generalizes best of the three",
          "1.13 < 1.25, 1.34", "fig9_omniglot_sharing", _omniglot_learned_best),
    Claim("omniglot_learned_gain", "Omniglot: learned sharing lowers the test loss of separate networks",
          "+0.21 (1.34 - 1.13)", "fig9_omniglot_sharing", _omniglot_gain("learned")),
    Claim("omniglot_tied_gain", "Omniglot: a tied first layer lowers the test loss of separate networks",
          "+0.09 (1.34 - 1.25)", "fig9_omniglot_sharing", _omniglot_gain("tied"), NOT_LEARNED["fixed"]),
    Claim("omniglot_reparametrization", "Omniglot (our ablation): sharing by reparametrization "
          "beats sharing by a coupling penalty", "not in the paper", "fig9_omniglot_sharing",
          _omniglot_reparametrization),
    Claim("omniglot_test_order", "Omniglot test loss: learned sharing < tied < separate",
          "1.13 < 1.25 < 1.34", "fig9_omniglot_sharing", _omniglot_test_order),
    Claim("omniglot_train_order", "Omniglot training loss: tying the first layer is worst",
          "0.60, 0.61 < 0.90", "fig9_omniglot_sharing", _omniglot_train_order, NOT_LEARNED["fixed"]),
    *[Claim(f"omniglot_{model}_{part}", f"Omniglot {part} loss, {model}",
            f"{OMNIGLOT_PAPER[model, part]:.2f}", "fig9_omniglot_sharing", _omniglot_number(model, part),
            "" if (model, part) == ("learned", "test") else
            NOT_LEARNED["learned_train"] if model == "learned" else NOT_LEARNED["fixed"])
      for model in ("separate", "tied", "learned") for part in ("train", "test")],
    Claim("omniglot_sweep_reachable", "Omniglot: the paper's separate-network test loss is "
          "reachable by a principled choice of drawers and downsampling (our check)", "1.34",
          "omniglot_sweep", _omniglot_sweep_reachable, NOT_LEARNED["data_sweep"]),
    Claim("chaos_onset", "Hypergradients turn chaotic past log step size ~1.5 (Fig. 10)",
          "1.5 (authors' results.pkl by this rule: 1.47)", "fig10_chaos", _chaos, NOT_LEARNED["sweep"]),
    Claim("chaos_same_run", "Fig. 10's smooth region is the authors' run: loss and hypergradient "
          "at log step sizes 0.5, 1.0, 1.3", "0.0288, 0.00957, 0.00508 (results.pkl)",
          "fig10_chaos", _chaos_same_run, NOT_LEARNED["sweep"]),
    Claim("l2_penalty_scale", "Learned per-weight L2 penalties spread over Fig. 6's colour scale, "
          "0 to ~0.03 (start: 0.0272 for every weight)", "0 to 0.03", "fig6_l2_penalties", _penalty_scale),
    Claim("learned_preprocessing_vs_baselines", "Learned per-pixel preprocessing beats the best "
          "baseline on test (our extension)", "named, no number (Sec. 3.2)", "data_augmentation",
          _beats_baselines("preprocessing", "preprocessing")),
    Claim("learned_augmentation_vs_baselines", "Learned data augmentation beats the best baseline "
          "on test (our extension)", "named, no number (Sec. 3.2)", "data_augmentation",
          _beats_baselines("learned_augmentation", "augmentation")),
    Claim("learned_images_range", "Learned training pixels span -0.30 to 0.33 (Fig. 7 colour scale)",
          "-0.30 to 0.33", "fig7_learned_training_set", _image_range),
    Claim("adam_learned_schedules", "Reversible Adam (our extension): hypergradient-learned Adam "
          "schedules beat the best constant Adam schedule on held-out seeds", "not in the paper",
          "reversible_adam", _adam_schedules),
]


def _verdict(claim, data, name):
    """(ours, ours_text, status, note) of one claim on its figure's data."""
    try:
        ours, text, supports, note = claim.measure(data)
    except Missing as why:
        return None, "", NOT_MEASURED, f"{name}: {why}."
    except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError, AttributeError) as error:
        # A rule that met a layout it does not expect: say so, and never give a verdict.
        return None, "", NOT_MEASURED, (f"{name} does not hold the quantities this rule reads "
                                        f"({type(error).__name__} in the rule: {error}).")
    if supports is None:
        return None, text if text != "-" else "", NOT_MEASURED, note
    if ours is not None and not (isinstance(ours, (int, float, np.number)) and math.isfinite(ours)):
        return None, "", NOT_MEASURED, f"{name}: our number is {ours}, not a finite number."
    return None if ours is None else float(ours), text, "supports" if supports else "does not support", note


def figure_current(path):
    """Whether the figure JSON at path is current with the code and data that made it (its
    "provenance": notebook code, package sources, data files; reproducer.provenance):
    "yes", "no: why", or "no provenance" for a figure made before it was recorded."""
    from .provenance import reasons_stale
    try:
        made = json.loads(Path(path).read_text()).get("provenance")
    except (OSError, ValueError, AttributeError):
        return "no: unreadable"
    if not isinstance(made, dict):
        return "no provenance"
    why = reasons_stale(Path(path).parent, made.get("scale"), Path(made.get("notebook", "")).stem,
                        [Path(path).stem])
    return "yes" if not why else "no: " + "; ".join(why)


def summary(previous, rows):
    """A few lines instead of the table: counts of each verdict, and the claims whose verdict
    changed since `previous` (the rows of the claims.json this run replaces, or [])."""
    statuses = [r["status"] for r in rows]
    lines = [f"{len(rows)} claims: " + ", ".join(f"{statuses.count(s)} {s}"
                                                 for s in dict.fromkeys(statuses))]
    before = {r.get("key"): r.get("status") for r in previous}
    changed = [f"  {r['key']}: {before[r['key']]} -> {r['status']}" for r in rows
               if r["key"] in before and before[r["key"]] != r["status"]]
    lines.append("verdicts changed:" if changed else "no verdict changed.")
    return "\n".join(lines + changed)


def ledger(figures_dir, claims=CLAIMS, problems=None):
    """One dict per claim: key, claim, figure, paper, ours (float or None), ours_text,
    status ("supports", "does not support", "not yet run", "not measured", or "not judged
    (SCALE scale)" when the figure's JSON comes from a smaller run than the paper's), note.
    A figure's JSON that cannot be read makes its claims "not measured"; the one-line reason
    is appended to `problems` (a list) if given."""
    rows, figures, current = [], {}, {}
    for claim in claims:
        row = dict(key=claim.key, claim=claim.claim, figure=f"{claim.figure}.json",
                   paper=claim.paper, ours=None, ours_text="", status=NOT_RUN, note="")
        path = Path(figures_dir) / f"{claim.figure}.json"
        if path.exists() and path not in figures:
            current[path] = figure_current(path)
            try:
                figures[path] = _read_figure(path)
            except Unreadable as error:
                figures[path] = error
                if problems is not None:
                    problems.append(str(error))
        if path in current:
            row["current"] = current[path]
        data = figures.get(path)
        if isinstance(data, Unreadable):
            row.update(status=NOT_MEASURED, note=f"{data}: rerun its notebook.")
        elif data is not None:
            ours, text, status, note = _verdict(claim, data, path.name)
            row.update(ours=ours, ours_text=text, status=status, note=note)
            scale = data.get("scale", "paper")
            if status in ("supports", "does not support") and scale != "paper":
                # A verdict needs the experiment the authors ran: a smaller run only hints.
                row["status"] = f"{NOT_JUDGED} ({scale} scale)"
                row["note"] += (f" From a {scale}-scale run, not the paper scale; "
                                f"there the rule gives: {status}.")
            if claim.not_learned and status != NOT_MEASURED:
                row["note"] += f" (No no-learning control: {claim.not_learned}.)"
            if isinstance(data.get("scale_note"), str):     # how the run departs from the paper
                row["note"] += f" Setting of this run: {data['scale_note']}."
        rows.append(row)
    return rows


def markdown_table(rows):
    """The ledger as a Markdown table."""
    lines = ["| Claim | Paper | Ours | Verdict | Figure current with the code | Source and note |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["claim"], r["paper"], r["ours_text"] or "-", r["status"],
                 r.get("current", "-"), f"`{r['figure']}`. {r['note']}".strip()]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(lines)


def rewrite_readme(text, table):
    """text with everything between the START and END marker lines replaced by table;
    None if the markers are missing or out of order."""
    return replace_between(text, START, END, table)


def main(argv=None):
    """The command line; returns the exit status (1 if a figure's JSON could not be read or
    the ledger could not be written)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figures", default="figures", help="folder of the figures' JSON")
    parser.add_argument("--readme", default="README.md", help="README to rewrite")
    parser.add_argument("--no-readme", action="store_true",
                        help="only write claims.json and print the table (for quick runs)")
    args = parser.parse_args(argv)
    problems = []
    rows = ledger(args.figures, problems=problems)
    output = Path(args.figures) / "claims.json"
    try:
        previous = json.loads(output.read_text())["claims"]
    except (OSError, ValueError, KeyError, TypeError):
        previous = []
    table = markdown_table(rows)
    readme = Path(args.readme)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        text = None if args.no_readme or not readme.is_file() else readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        print(f"reproducer.claims: {error}", file=sys.stderr)
        return 1
    new = None if text is None else rewrite_readme(text, table)
    texts = {output: json.dumps({"claims": rows}, indent=1) + "\n"}
    if new is not None and new != text:
        texts[readme] = new
    try:
        write_all(texts)
    except WriteError as error:
        print(f"reproducer.claims: {error}", file=sys.stderr)
        return 1
    if new is None and not args.no_readme:      # a quick run prints the summary only
        print(table + "\n")
        print(f"{readme} has no {START} ... {END} section: add the two marker lines "
              "where the table belongs, then run this again.")
    print(summary(previous, rows))
    print(f"ledger written to {output}" + (f" and {readme}." if new is not None else "."))
    for problem in problems:
        print(f"reproducer.claims: {problem}: its claims are '{NOT_MEASURED}'; rerun its notebook.",
              file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
