"""Every rule of the claims ledger can fail, and the ledger never turns a missing, null,
non-finite or unreadable number into a verdict (nor a file into half a file).

The rules are applied to the committed figures' JSON (figures/), changed in one place:
a rule about something learned must stop supporting its claim when the learned values are
replaced by the starting ones ("no learning"); every rule must give both verdicts under
small changes of its data."""
import copy
import json
import math
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reproducer import claims

FIGURES = Path(__file__).resolve().parents[1] / "figures"
BY_KEY = {c.key: c for c in claims.CLAIMS}


def committed(figure):
    path = FIGURES / f"{figure}.json"
    if not path.exists() and figure in NOT_YET_COMMITTED:
        path = NOT_YET_COMMITTED[figure]
    data = json.loads(path.read_text())
    return UNTIL_RERUN.get(figure, lambda d: d)(data)


UNTIL_RERUN = {}     # figure -> a stand-in for keys its committed JSON predates (none now)
# figure -> a JSON its notebook wrote at quick scale, until a paper-scale run is committed
NOT_YET_COMMITTED = {"omniglot_sweep": Path(__file__).parent / "omniglot_sweep_quick.json"}


def status(key, data):
    """The ledger's verdict for one claim on one figure's data (a dict)."""
    return claims._verdict(BY_KEY[key], data, f"{BY_KEY[key].figure}.json")


# --- no learning: the learned values replaced by the starting ones ----------------------

def flat_meta_curve(d):
    d["meta_train_loss"] = [d["meta_train_loss"][0]] * len(d["meta_train_loss"])
    d["learned_final_loss"] = d.get("start_final_loss", d["meta_train_loss"][0])   # the start's loss
    d["final_test_error"] = d["meta_test_error"][0]


def scales_stay(d):
    d["log_scales"] = [d["log_scales"][0]] * len(d["log_scales"])
    d["learned_scales"] = {b: math.exp(s) for b, s in zip(d["blocks"], d["log_scales"][0])}


def sharing_not_learned(d):
    """The learned sharing starts at c = 0.5 in every layer: its validation loss is the first
    of each meta-learning curve, and its final trainings' losses are `start`."""
    d["meta_valid_loss"] = [[curve[0]] * len(curve) for curve in d["meta_valid_loss"]]
    d["ablation_meta_valid_loss"] = [d["ablation_meta_valid_loss"][0]] * len(d["ablation_meta_valid_loss"])
    d["learned"] = copy.deepcopy(d["start"])


def preprocessing_stays(d):
    """The learned preprocessing starts at the identity: no preprocessing's numbers."""
    for key in ("test_loss", "test_loss_std", "valid_loss"):
        if key in d:
            d[key]["preprocessing"] = d[key]["none"]


def stencils_stay(d):
    """The stencils start near zero: copies equal to their images, i.e. no augmentation."""
    for key in ("test_loss", "test_loss_std", "valid_loss"):
        if key in d:
            d[key]["learned_augmentation"] = d[key]["none"]


def penalties_stay(d):
    d["log_penalties"] = np.full(np.shape(d["log_penalties"]), -3.6052).tolist()
    d["penalty_98th_percentile"] = math.exp(-3.6052)


def images_stay_blank(d):
    d["learned_images"] = np.zeros(np.shape(d["learned_images"])).tolist()
    d["colour_range"] = [0.0, 0.0]


def toy_not_learned(d):
    d["meta_loss"] = [d["meta_loss"][0]] * len(d["meta_loss"])


def adam_not_learned(d):
    """Every learned Adam schedule replaced by the start it was learned from."""
    held = d["held_out"]
    for name in [k for k in held if "/" in k]:
        held[name] = copy.deepcopy(held["start_" + name.split("/")[0]])


def draws_not_learned(d):
    """Every draw's schedules and scales replaced by the start (log alpha -1, log scale -3),
    and its held-out losses by the start's."""
    for run in d["runs"].values():
        run["alphas"] = np.full(np.shape(run["alphas"]), math.exp(-1.0)).tolist()
        run["log_scales"] = np.full(np.shape(run["log_scales"]), -3.0).tolist()
        run["held_out"] = copy.deepcopy(d["start"])


NO_LEARNING = {
    "other_draws_layer4_peak": draws_not_learned,
    "other_draws_layer1_scale": draws_not_learned,
    "other_draws_final_loss": draws_not_learned,
    "adam_learned_schedules": adam_not_learned,
    "toy_meta_learning_authors": toy_not_learned,
    "meta_learning_curve": flat_meta_curve,
    "learned_vs_fixed_schedule": flat_meta_curve,
    "init_scale_layer1": scales_stay,
    "omniglot_learned_best": sharing_not_learned,
    "omniglot_learned_gain": sharing_not_learned,
    "omniglot_reparametrization": sharing_not_learned,
    "omniglot_test_order": sharing_not_learned,
    "omniglot_learned_test": sharing_not_learned,
    "l2_penalty_scale": penalties_stay,
    "learned_images_range": images_stay_blank,
    "learned_preprocessing_vs_baselines": preprocessing_stays,
    "learned_augmentation_vs_baselines": stencils_stay,
}

# Rules that cannot be posed as "learned values replaced by the starting ones", and why.
NOT_ABOUT_LEARNING = {
    "bits_gamma_0.9": "the information buffer's size: no learning involved",
    "bits_gamma_0.98": "the information buffer's size",
    "memory_factor_gamma_0.9": "the information buffer's size",
    "memory_factor_gamma_0.98": "the information buffer's size",
    "memory_whole_hypergradient": "peak memory of one hypergradient",
    "hypergradient_cost": "a timing",
    "baseline_step_size": "Bayesian optimization over fixed schedules, no hypergradients",
    "baseline_momentum": "Bayesian optimization over fixed schedules",
    "baseline_init_scale": "Bayesian optimization over fixed schedules",
    "initial_hypergradient_authors": "the hypergradient before any learning",
    "omniglot_alphabets": "identifying the alphabets in the paper's figure",
    "omniglot_tied_gain": "tied and separate networks are fixed baselines",
    "omniglot_train_order": "about the tied baseline's training loss",
    "omniglot_separate_train": "a fixed baseline", "omniglot_separate_test": "a fixed baseline",
    "omniglot_tied_train": "a fixed baseline", "omniglot_tied_test": "a fixed baseline",
    "omniglot_learned_train": "the paper's learned training loss equals its separate one",
    "chaos_onset": "a sweep of fixed step sizes", "chaos_same_run": "a sweep of fixed step sizes",
    "omniglot_sweep_reachable": "a sweep of fixed data choices for separate networks",
}


def test_every_rule_is_either_about_learning_or_says_why_not():
    keys = set(BY_KEY)
    assert not set(NO_LEARNING) & set(NOT_ABOUT_LEARNING)
    assert set(NO_LEARNING) | set(NOT_ABOUT_LEARNING) == keys
    for key in NOT_ABOUT_LEARNING:
        assert BY_KEY[key].not_learned, key          # and the ledger's note says why
    for key in NO_LEARNING:
        assert not BY_KEY[key].not_learned, key
    rows = {r["key"]: r for r in claims.ledger(FIGURES)}
    for key in NOT_ABOUT_LEARNING:
        if rows[key]["status"] in ("supports", "does not support"):
            assert f"(No no-learning control: {BY_KEY[key].not_learned}.)" in rows[key]["note"]


@pytest.mark.parametrize("key", sorted(NO_LEARNING))
def test_no_learning_never_supports(key):
    data = committed(BY_KEY[key].figure)
    assert status(key, data)[2] in ("supports", "does not support")    # the rule runs on it
    NO_LEARNING[key](data)
    assert status(key, data)[2] == "does not support", status(key, data)[3]


# --- every rule gives both verdicts under a small change of its data --------------------

def scale(d, path, factor):
    """Multiply the number at d[path...] (or the last entry of a list there) by factor."""
    *head, last = path
    for k in head:
        d = d[k]
    d[last] = d[last] * factor


def bits_at(gamma, factor):
    def change(d):
        d["bits_per_param_step"][d["gammas"].index(gamma)] *= factor
    return change


def setter(path, value):
    def change(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value(d) if callable(value) else value
    return change


def chained(*changes):
    def change(d):
        for c in changes:
            c(d)
    return change


def nothing(d):
    pass


def each_draw(change, only=None):
    """Apply change(run, d) to every draw's run (or to the first other draw only)."""
    def apply(d):
        others = [k for k in d["runs"] if k != d["reference"]]
        for key in ([others[0]] if only == "other" else d["runs"]):
            change(d["runs"][key], d)
    return apply


def early_peak(run, d):
    t = np.arange(d["T"])
    a = np.array(run["alphas"])
    a[:, d["blocks"].index("layer4_weights")] = 1 + 4 * np.exp(-((t - d["early_steps"] / 2) / max(d["T"] / 20, 1)) ** 2)
    run["alphas"] = a.tolist()


def flat_layer4(run, d):
    a = np.array(run["alphas"])
    a[:, d["blocks"].index("layer4_weights")] = 1.0
    run["alphas"] = a.tolist()


def final_layer1_scale(value):
    def change(run, d):
        run["log_scales"][-1][d["blocks"].index("layer1_weights")] = math.log(value)
    return change


def same_loss_as_reference(run, d):
    run["held_out"] = copy.deepcopy(d["runs"][d["reference"]]["held_out"])
    d["start"]["final_loss"] = run["held_out"]["final_loss"] + 10 * max(
        run["held_out"]["final_loss_std"], d["start"]["final_loss_std"])


def off_the_reference(run, d):
    ref = d["runs"][d["reference"]]["held_out"]
    run["held_out"]["final_loss"] = ref["final_loss"] + 3 * max(ref["final_loss_std"],
                                                                run["held_out"]["final_loss_std"])


def fixed_optima_as_good(d):
    """Both fixed-schedule optima within half a spread of the learned schedules."""
    for name in ("ours", "authors"):
        d["held_out"][name]["final_loss"] = d["learned_final_loss"] + 0.5 * d["learned_final_loss_std"]


# key: (a change under which the rule supports, one under which it does not)
BOTH_VERDICTS = {
    "other_draws_layer4_peak": (each_draw(early_peak), each_draw(flat_layer4, "other")),
    "other_draws_layer1_scale": (each_draw(final_layer1_scale(0.040)),
                                 each_draw(final_layer1_scale(math.exp(-3.0)), "other")),
    "other_draws_final_loss": (each_draw(same_loss_as_reference), each_draw(off_the_reference, "other")),
    "adam_learned_schedules": (nothing, lambda d: scale(d, ["held_out", "best_constant", "mean"], 0.985)),
    "toy_meta_learning_authors": (nothing, lambda d: scale(d, ["meta_loss", 1], 1.01)),
    "bits_gamma_0.9": (nothing, bits_at(0.9, 1.3)),
    "bits_gamma_0.98": (nothing, bits_at(0.98, 1.3)),
    "memory_factor_gamma_0.9": (nothing, bits_at(0.9, 1.3)),
    "memory_factor_gamma_0.98": (nothing, bits_at(0.98, 1.3)),
    "memory_whole_hypergradient": (nothing, lambda d: d["exact_reversal"]["bytes"].__setitem__(
        -1, 2 * d["checkpointing"]["bytes"][-1])),
    "hypergradient_cost": (
        setter(["hypergradient_cost", "plain_seconds"], lambda c: c["hypergradient_seconds"] / 2.5),
        setter(["hypergradient_cost", "plain_seconds"], lambda c: c["hypergradient_seconds"] / 4)),
    "meta_learning_curve": (nothing, lambda d: d.__setitem__(       # noisy, not lower
        "meta_train_loss", [0.5 + 0.01 * (-1) ** i for i in range(len(d["meta_train_loss"]))])),
    "learned_vs_fixed_schedule": (nothing, fixed_optima_as_good),
    "baseline_step_size": (nothing, setter(["baseline_step_size"], 4.0)),
    "baseline_momentum": (setter(["baseline_momentum"], 0.6), chained(      # 0.60 scores worse
        setter(["held_out"], lambda d: held_out(ours=(0.10, 0.004), authors=(0.12, 0.005),
                                                ours_momentum_060=(0.111, 0.003))))),
    "baseline_init_scale": (nothing, setter(["baseline_init_scale"], 0.4)),
    "initial_hypergradient_authors": (nothing, setter(
        ["authors_comparison", "d_log_alphas", "relative_difference"], 0.05)),
    "init_scale_layer1": (nothing, lambda d: d["learned_scales"].__setitem__("layer1_weights", 0.047)),
    "omniglot_alphabets": (nothing, setter(["paper_figure_matches", 7, "alphabet"], "Tifinagh")),
    "omniglot_learned_best": (nothing, setter(["learned", "test_loss"], 1.40)),
    "omniglot_learned_gain": (nothing, setter(["learned", "test_loss"], 1.45)),
    "omniglot_tied_gain": (nothing, setter(["tied", "test_loss"], 1.46)),
    "omniglot_reparametrization": (nothing, setter(["ablation", "reparam_learned", 1], 1.40)),
    "omniglot_test_order": (nothing, setter(["tied", "test_loss"], 1.25)),
    "omniglot_train_order": (nothing, setter(["tied", "train_loss"], 0.5)),
    "omniglot_separate_train": (nothing, setter(["separate", "train_loss"], 0.75)),
    "omniglot_separate_test": (setter(["separate", "test_loss"], 1.40), nothing),
    "omniglot_tied_train": (nothing, setter(["tied", "train_loss"], 1.1)),
    "omniglot_tied_test": (setter(["tied", "test_loss"], 1.30), nothing),
    "omniglot_learned_train": (nothing, setter(["learned", "train_loss"], 0.7)),
    "omniglot_learned_test": (setter(["learned", "test_loss"], 1.20), nothing),
    "chaos_onset": (nothing, lambda d: d.__setitem__("hypergradients", [-1.0] * len(d["log_alphas"]))),
    "chaos_same_run": (nothing, lambda d: scale(d, ["losses", 0], 1.05)),
    "l2_penalty_scale": (nothing, lambda d: d.__setitem__("log_penalties", (
        np.array(d["log_penalties"]) + math.log(2)).tolist())),      # all twice as strong: 0.05
    "learned_images_range": (nothing, lambda d: d.__setitem__("learned_images", (
        0.5 * np.array(d["learned_images"])).tolist())),
    "learned_preprocessing_vs_baselines": (setter(["test_loss", "preprocessing"], 0.33), nothing),
    "learned_augmentation_vs_baselines": (   # 0.364 +- 0.014 against 0.362: a tie, not a win
        setter(["test_loss", "learned_augmentation"], 0.34), nothing),
}


def sweep_test_losses(loss, only=None):
    """Every omniglot_sweep variant's (or only the named one's) test losses set to `loss`
    (one value per split it has)."""
    def change(d):
        for v in d["variants"]:
            if only is None or f'{v["downsampling"]} / {v["drawers"]}' == only:
                v["test_loss"] = [loss] * len(v["test_loss"])
    return change


BOTH_VERDICTS["omniglot_sweep_reachable"] = (
    chained(sweep_test_losses(1.6), sweep_test_losses(1.343, "matlab_bicubic / first")),
    chained(sweep_test_losses(1.6), sweep_test_losses(1.30, "nearest / seed0"),     # aliased: ignored
            sweep_test_losses(1.36, "pil_lanczos / seed0")))


def test_learned_inputs_against_baselines_are_not_measured_without_them_and_judged_on_test():
    data = committed("data_augmentation")
    for key in ("test_loss", "test_loss_std"):          # as a JSON made before the baselines
        for baseline in ("mean_centring", "standardization"):
            data[key].pop(baseline)
    verdict, note = status("learned_preprocessing_vs_baselines", data)[2:]
    assert verdict == "not measured" and "mean_centring" in note
    data = committed("data_augmentation")
    data["test_loss"]["standardization"] = 0.30                             # a baseline wins
    data["valid_loss"] = dict(none=0.4, preprocessing=0.0, learned_augmentation=0.0)   # not the judge
    for key in ("learned_preprocessing_vs_baselines", "learned_augmentation_vs_baselines"):
        verdict, note = status(key, data)[2:]
        assert verdict == "does not support" and "the best, standardization, 0.3000" in note


def held_out(**rows):
    """held_out as the notebook writes it: name -> final training loss (mean, spread) on the
    held-out seeds; ours_momentum_060 stands for "ours_momentum_0.60"."""
    return {k.replace("060", "0.60"): dict(final_loss=m, final_loss_std=sd) for k, (m, sd) in rows.items()}


def test_the_momentum_rule_respects_a_flat_objective():
    """Our momentum (0.252 in the committed run) is far from 0.60; the claim still holds if
    0.60 scores as well on held-out seeds, and fails if it scores worse by more than a spread;
    an old JSON without held-out scores is not measured, not judged by the distance alone."""
    data = committed("fig3_learning_curves")
    assert abs(data["baseline_momentum"] - 0.60) > 0.15
    old = copy.deepcopy(data)
    del old["held_out"]                                   # a JSON made before the held-out scores
    ours, _, verdict, note = status("baseline_momentum", old)
    assert verdict == "not measured" and "lacks held_out.ours" in note
    for authors, at_060, expected in [((0.104, 0.005), None, "supports"),       # within one spread
                                      ((0.09, 0.005), None, "supports"),        # better than ours
                                      ((0.12, 0.005), (0.103, 0.002), "supports"),
                                      ((0.12, 0.005), (0.111, 0.002), "does not support"),
                                      ((0.106, 0.005), None, "does not support")]:
        rows = dict(ours=(0.10, 0.004), authors=authors)
        if at_060 is not None:
            rows["ours_momentum_060"] = at_060
        data["held_out"] = held_out(**rows)
        verdict, note = status("baseline_momentum", data)[2:]
        assert verdict == expected, (authors, at_060, note)
        assert f"{authors[0]:.4g} +- {authors[1]:.2g}" in note


def test_learned_schedules_are_compared_with_the_better_fixed_optimum():
    data = committed("fig3_learning_curves")
    learned, spread = data["learned_final_loss"], data["learned_final_loss_std"]
    data["start_final_loss"] = learned + 1.0
    data["held_out"] = held_out(ours=(learned + 10 * spread, spread), authors=(learned + 10 * spread, spread))
    assert status("learned_vs_fixed_schedule", data)[2] == "supports"
    data["held_out"]["authors"]["final_loss"] = learned + 0.5 * spread        # theirs: a tie
    verdict, note = status("learned_vs_fixed_schedule", data)[2:]
    assert verdict == "does not support" and "the better of the two fixed-schedule optima, the authors'" in note
    data["start_final_loss"] = learned - spread                               # learned no better than its start
    data["held_out"]["authors"]["final_loss"] = learned + 10 * spread
    assert status("learned_vs_fixed_schedule", data)[2] == "does not support"
    del data["held_out"]                                                      # an old JSON: ours only
    assert "lacks held_out.authors" in status("learned_vs_fixed_schedule", data)[3]


def test_both_verdicts_are_checked_for_every_claim():
    assert set(BOTH_VERDICTS) == set(BY_KEY)


@pytest.mark.parametrize("key", sorted(BOTH_VERDICTS))
def test_every_rule_gives_both_verdicts(key):
    for change, expected in zip(BOTH_VERDICTS[key], ("supports", "does not support")):
        data = committed(BY_KEY[key].figure)
        change(data)
        assert status(key, data)[2] == expected, (expected, status(key, data)[3])


def test_the_cost_rule_reports_the_floor_and_waits_for_plain_training():
    data = committed("fig3_learning_curves")
    data["hypergradient_cost"].pop("plain_seconds", None)
    ours, _, verdict, note = status("hypergradient_cost", data)
    assert verdict == "not measured" and ours is None
    assert "lacks hypergradient_cost.plain_seconds" in note
    assert "at about the cost of training twice" in note
    cost = data["hypergradient_cost"]
    c_hvp = (cost["gradient_and_hvp_seconds"] - cost["gradients_seconds"]) / cost["gradients_seconds"]
    assert f"1 + (1 + c_HVP) = {2 + c_hvp:.2f} trainings" in note
    assert "the reversible forward pass" in note and "one plain training run" not in note


# --- issue 18.4: a missing or non-finite quantity is "not measured", never a verdict -----

def ledger_rows(folder, figure, data):
    """The ledger's rows by key, with data written as folder/figure.json (NaN as json writes it)."""
    (folder / f"{figure}.json").write_text(json.dumps(data))
    return {r["key"]: r for r in claims.ledger(folder)}


def test_nan_bits_are_not_measured(tmp_path):
    data = committed("memory_comparison")
    data["bits_per_param_step"][data["gammas"].index(0.9)] = float("nan")
    rows = ledger_rows(tmp_path, "memory_comparison", data)
    for key in ("bits_gamma_0.9", "memory_factor_gamma_0.9"):
        assert rows[key]["status"] == "not measured" and rows[key]["ours"] is None
        assert "gamma = 0.9 is nan" in rows[key]["note"]
    assert rows["bits_gamma_0.98"]["status"] == "supports"


@pytest.mark.parametrize("value", [float("inf"), None, "1.3"])
def test_an_infinite_null_or_text_omniglot_loss_is_not_measured(value, tmp_path):
    data = committed("fig9_omniglot_sharing")
    data["separate"]["test_loss"] = value
    rows = ledger_rows(tmp_path, "fig9_omniglot_sharing", data)
    for key in ("omniglot_separate_test", "omniglot_learned_best", "omniglot_learned_gain",
                "omniglot_tied_gain", "omniglot_test_order"):
        assert rows[key]["status"] == "not measured" and rows[key]["ours"] is None, rows[key]
        assert "separate.test_loss" in rows[key]["note"]
    assert rows["omniglot_tied_test"]["status"] == "does not support"      # not affected


def test_a_chaos_sweep_that_all_diverged_places_no_onset(tmp_path):
    data = committed("fig10_chaos")
    data["hypergradients"] = [None] * len(data["log_alphas"])
    data["losses"] = [None] * len(data["log_alphas"])
    rows = ledger_rows(tmp_path, "fig10_chaos", data)
    for key in ("chaos_onset", "chaos_same_run"):
        assert rows[key]["status"] == "not measured" and rows[key]["ours"] is None, rows[key]
        assert rows[key]["ours_text"] == ""
    data["hypergradients"][:600] = committed("fig10_chaos")["hypergradients"][:600]
    assert status("chaos_onset", data)[2] == "supports"     # diverging past the onset is chaos


def test_null_comparison_says_what_is_missing(tmp_path):
    row = ledger_rows(tmp_path, "fig4_initial_hypergradient", {"authors_comparison": None})[
        "initial_hypergradient_authors"]
    assert row["status"] == "not measured"
    assert row["note"] == "fig4_initial_hypergradient.json: authors_comparison is null (not measured or diverged)."


def test_a_string_where_a_number_belongs_is_not_measured(tmp_path):
    data = committed("fig3_learning_curves")
    data["meta_train_loss"][3] = "0.4"
    data["baseline_step_size"] = "2.4"
    rows = ledger_rows(tmp_path, "fig3_learning_curves", data)
    assert rows["meta_learning_curve"]["status"] == "not measured"
    assert rows["meta_learning_curve"]["note"] == \
        "fig3_learning_curves.json: meta_train_loss is not an array of numbers."
    assert rows["baseline_step_size"]["note"] == \
        'fig3_learning_curves.json: baseline_step_size is "2.4", not a number.'


PYTHON_ERRORS = ("object is not", "unsupported operand", "has no attribute", "could not convert",
                 "in the rule", "NoneType", "argument", "index out of range")


@pytest.mark.parametrize("figure", sorted({c.figure for c in claims.CLAIMS}))
def test_a_broken_quantity_never_changes_a_verdict_or_leaks_a_python_error(figure):
    """Replace each number, list or object of the figure's JSON (two levels deep) by null,
    NaN, infinity, text, an empty list or an empty object: each claim keeps its verdict and
    number (the quantity was not one it judges by) or is "not measured", saying what."""
    original = committed(figure)
    keys = [c.key for c in claims.CLAIMS if c.figure == figure]
    before = {k: status(k, original) for k in keys}
    paths = [(k,) for k in original if k not in ("scale", "scale_note")]
    paths += [(k, j) for k in original if isinstance(original[k], dict) for j in original[k]]
    for path in paths:
        for bad in (None, float("nan"), float("inf"), "text", [], {}):
            data = copy.copy(original)
            if len(path) == 2:
                data[path[0]] = dict(original[path[0]])
            setter(list(path), bad)(data)
            for k in keys:
                ours, _, verdict, note = status(k, data)
                assert not any(e in note for e in PYTHON_ERRORS), (path, bad, k, note)
                if verdict != "not measured":
                    assert (ours, verdict) == (before[k][0], before[k][2]), (path, bad, k, note)


# --- unreadable files: one line naming the file, never a traceback -------------------------

def test_truncated_json_and_a_folder_are_named_in_one_line(tmp_path, capsys):
    text = (FIGURES / "fig6_l2_penalties.json").read_text()
    (tmp_path / "fig6_l2_penalties.json").write_text(text[:len(text) // 2])
    (tmp_path / "fig5_init_scales.json").mkdir()
    (tmp_path / "fig8_omniglot_alphabets.json").write_text("[1, 2]")
    assert claims.main(["--figures", str(tmp_path), "--no-readme"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("reproducer.claims: ") for line in err)
    assert any("fig6_l2_penalties.json is not valid JSON" in line for line in err)
    assert any("fig5_init_scales.json is a folder" in line for line in err)
    assert any("fig8_omniglot_alphabets.json holds a JSON list" in line for line in err)
    rows = {r["key"]: r for r in json.loads((tmp_path / "claims.json").read_text())["claims"]}
    assert rows["l2_penalty_scale"]["status"] == "not measured"
    assert "fig6_l2_penalties.json is not valid JSON" in rows["l2_penalty_scale"]["note"]
    assert rows["init_scale_layer1"]["status"] == "not measured"


def test_a_full_disk_leaves_claims_json_and_the_readme_as_they_were(tmp_path):
    """Run the command with a 2,000-byte limit on file size (as a full disk would stop it):
    the old claims.json and README must stay whole, and no temporary file stays behind."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{claims.START}\nold table\n{claims.END}\n")
    (tmp_path / "claims.json").write_text('{"claims": []}\n')

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # a write past the limit fails
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    run = subprocess.run([sys.executable, "-m", "reproducer.claims", "--figures", str(tmp_path),
                          "--readme", str(readme)], preexec_fn=limit, capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().startswith(f"reproducer.claims: could not write {tmp_path / 'claims.json'}")
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert (tmp_path / "claims.json").read_text() == '{"claims": []}\n'
    assert readme.read_text() == f"# Title\n\n{claims.START}\nold table\n{claims.END}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "claims.json"]


def test_write_all_replaces_whole_files_and_keeps_the_mode(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("old")
    readme.chmod(0o640)
    claims.write_all({readme: "new", tmp_path / "claims.json": "{}"})
    assert readme.read_text() == "new" and (readme.stat().st_mode & 0o777) == 0o640
    assert (tmp_path / "claims.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "claims.json"]


def test_the_omniglot_sweep_rule_waits_for_the_sweep_and_ignores_aliased_routines(tmp_path):
    rows = {r["key"]: r for r in claims.ledger(tmp_path)}                  # no JSON at all
    assert rows["omniglot_sweep_reachable"]["status"] == "not yet run"
    data = committed("omniglot_sweep")
    del data["variants"][0]["test_loss"]
    verdict, note = status("omniglot_sweep_reachable", data)[2:]
    assert verdict == "not measured" and "lacks variants[0].test_loss" in note
    data = committed("omniglot_sweep")
    sweep_test_losses(1.6)(data)
    sweep_test_losses(1.2, "nearest / seed0")(data)                         # aliased: not a choice
    sweep_test_losses(1.2, "bilinear_no_aa / seed0")(data)
    assert status("omniglot_sweep_reachable", data)[2] == "does not support"
