"""The reverse modes the memory comparison measures agree, and the claims ledger reports
only what the figures' JSON holds and rewrites only its own README section."""
import json

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from reproducer import claims
from reproducer.models import cross_entropy, init_weights, minibatch, mlp_layout, mlp_predict
from reproducer.sgd import sgd_momentum, sgd_momentum_unrolled

# --- every reverse mode gives the same hypergradient ------------------------------------

LAYOUT = mlp_layout([6, 5, 3])
RS = np.random.RandomState(0)
INPUTS, TARGETS = RS.randn(40, 6), np.eye(3)[RS.randint(0, 3, 40)]
T = 25


def loss(w, theta, t):
    idx = minibatch(t, len(INPUTS), 10)
    return cross_entropy(mlp_predict(LAYOUT, w, INPUTS[idx]), TARGETS[idx]) \
        + anp.exp(theta[0]) * anp.sum(w ** 2)


def hypergradient(method):
    """d validation loss / d (w0, alphas (T,), gammas (T,), theta (1,))."""
    def meta_loss(w0, alphas, gammas, theta):
        if method == "unrolled":
            w_T = sgd_momentum_unrolled(loss, w0, alphas, gammas, theta)
        else:
            w_T = sgd_momentum(loss, w0, alphas, gammas, theta, method=method)
        return cross_entropy(mlp_predict(LAYOUT, w_T, INPUTS), TARGETS)
    args = (init_weights(LAYOUT, [-1.0] * 4, seed=1), np.linspace(0.2, 0.4, T),
            np.linspace(0.5, 0.95, T), np.array([-4.0]))
    return grad(meta_loss, argnum=[0, 1, 2, 3])(*args)


@pytest.fixture(scope="module")
def unrolled():
    return hypergradient("unrolled")


@pytest.mark.parametrize("method", ["exact", "stored", "checkpoint"])
def test_every_reverse_mode_matches_autograd_through_the_loop(method, unrolled):
    for ours, reference in zip(hypergradient(method), unrolled):
        assert np.max(np.abs(ours - reference)) <= 1e-6 * np.max(np.abs(reference))


def test_checkpointing_recomputes_the_stored_trajectory_exactly():
    for a, b in zip(hypergradient("checkpoint"), hypergradient("stored")):
        assert np.array_equal(a, b)


# --- the ledger ---------------------------------------------------------------------------

def write(folder, name, data):
    (folder / f"{name}.json").write_text(json.dumps(data))


def rows_by_key(folder):
    return {row["key"]: row for row in claims.ledger(folder)}


def test_no_figures_means_every_claim_is_not_yet_run(tmp_path):
    rows = claims.ledger(tmp_path)
    assert len(rows) == len(claims.CLAIMS)
    assert all(r["status"] == "not yet run" and r["ours"] is None and r["ours_text"] == ""
               for r in rows)


def test_memory_claims_are_read_from_the_json(tmp_path):
    write(tmp_path, "memory_comparison", {
        "T": [10, 100], "gammas": [0.5, 0.9, 0.98], "bits_per_param_step": [1.0, 0.152, 0.04],
        "stored_trajectory": {"bytes": [100, 1000], "seconds": [1.0, 2.0]},
        "exact_reversal": {"bytes": [50, 60], "seconds": [1.0, 5.0]},
        "plain_training": {"seconds": [0.5, 2.0]}, "problem": {"gamma": 0.9}, "scale": "paper"})
    rows = rows_by_key(tmp_path)
    assert rows["bits_gamma_0.9"]["ours"] == 0.152
    assert rows["bits_gamma_0.9"]["status"] == "supports"
    assert rows["memory_factor_gamma_0.9"]["ours"] == pytest.approx(32 / 0.152)
    assert rows["memory_factor_gamma_0.9"]["status"] == "supports"
    assert rows["bits_gamma_0.98"]["ours"] == 0.04                # 38% above 0.029
    assert rows["bits_gamma_0.98"]["status"] == "does not support"
    assert rows["memory_factor_gamma_0.98"]["ours"] == pytest.approx(800)
    assert rows["memory_factor_gamma_0.98"]["status"] == "does not support"
    assert rows["hypergradient_cost"]["status"] == "not yet run"    # measured in fig3's JSON
    assert rows["chaos_onset"]["status"] == "not yet run"


def test_a_missing_key_is_not_measured_never_guessed(tmp_path):
    write(tmp_path, "fig5_init_scales", {"learned_scales": {"layer2_weights": 0.1}})
    write(tmp_path, "memory_comparison", {"gammas": [0.5], "bits_per_param_step": [1.0]})
    rows = rows_by_key(tmp_path)
    for key in ("init_scale_layer1", "bits_gamma_0.9", "memory_factor_gamma_0.98"):
        assert rows[key]["status"] == "not measured" and rows[key]["ours"] is None
        assert "lacks" in rows[key]["note"]


def test_schedules_scales_and_omniglot(tmp_path):
    write(tmp_path, "fig3_learning_curves", {
        "meta_train_loss": [0.5, 0.3, 0.2], "final_test_error": 0.07, "learned_final_loss": 0.21,
        "baseline_final_loss": 0.25, "baseline_step_size": 2.0, "baseline_momentum": 0.8,
        "baseline_init_scale": 0.15,
        "held_out": {"ours": {"final_loss": 0.25, "final_loss_std": 0.01},       # 0.60 scores worse
                     "authors": {"final_loss": 0.30, "final_loss_std": 0.01}},
        "hypergradient_cost": {"hypergradient_seconds": 1.0, "forward_seconds": 0.4,
                               "gradients_seconds": 0.1, "gradient_and_hvp_seconds": 0.5,
                               "plain_seconds": 0.4}})
    write(tmp_path, "fig5_init_scales", {"learned_scales": {"layer1_weights": 0.1},
                                         "blocks": ["layer1_weights"], "log_scales": [[-3.0], [-2.3]]})
    write(tmp_path, "fig9_omniglot_sharing", {
        "separate": {"train_loss": 0.6, "test_loss": 1.3},
        "tied": {"train_loss": [0.8, 1.0], "test_loss": 1.2},      # per task: the mean
        "learned": {"train_loss": 0.62, "test_loss": 1.1}, "scale_note": "smaller networks",
        "meta_valid_loss": [[2.0, 1.5, 1.2]]})
    rows = rows_by_key(tmp_path)
    assert rows["meta_learning_curve"]["ours"] == 0.2
    assert rows["meta_learning_curve"]["status"] == "supports"
    assert rows["baseline_step_size"]["ours"] == 2.0
    assert rows["baseline_step_size"]["status"] == "supports"        # within 1.5x of 2.4
    assert rows["baseline_momentum"]["status"] == "does not support"  # 0.2 from 0.60, and 0.60 worse
    assert rows["baseline_init_scale"]["status"] == "supports"       # within 1.5x of 0.196
    assert rows["hypergradient_cost"]["ours"] == 2.5                  # 1.0 s / 0.4 s plain
    assert rows["hypergradient_cost"]["status"] == "supports"
    assert "c_HVP = 4.00 gradients" in rows["hypergradient_cost"]["note"]     # 0.4 s / 0.1 s
    assert rows["init_scale_layer1"]["status"] == "does not support"  # moved away from 1/28
    assert rows["omniglot_test_order"]["status"] == "supports"
    assert rows["omniglot_train_order"]["status"] == "supports"
    assert rows["omniglot_tied_train"]["ours"] == pytest.approx(0.9)
    assert rows["omniglot_tied_train"]["status"] == "supports"
    assert rows["omniglot_learned_test"]["ours"] == 1.1
    assert rows["omniglot_learned_test"]["note"].endswith("Setting of this run: smaller networks.")


def test_a_smaller_run_than_the_papers_is_not_judged(tmp_path):
    # a verdict needs the experiment the authors ran; a quick run only says what the rule gives
    for scale, losses in (("quick", [0.5, 0.6]), ("smoke", [0.5, 0.2])):
        write(tmp_path, "fig3_learning_curves", {"meta_train_loss": losses, "scale": scale})
        row = rows_by_key(tmp_path)["meta_learning_curve"]
        assert row["status"] == f"not judged ({scale} scale)" and row["ours"] == losses[-1]
        verdict = "supports" if losses[-1] < losses[0] else "does not support"
        assert row["note"].endswith(f"From a {scale}-scale run, not the paper scale; there the "
                                    f"rule gives: {verdict}.")
    write(tmp_path, "fig3_learning_curves", {"meta_train_loss": [0.5, 0.6], "scale": "paper"})
    assert rows_by_key(tmp_path)["meta_learning_curve"]["status"] == "does not support"


def test_initial_hypergradient_against_the_authors(tmp_path):
    close = {"correlation": 0.99999, "relative_difference": 1e-4}
    write(tmp_path, "fig4_initial_hypergradient", {"authors_comparison": {
        "d_log_alphas": close, "d_logit_gammas": close, "d_log_scales": close}})
    assert rows_by_key(tmp_path)["initial_hypergradient_authors"]["status"] == "supports"
    write(tmp_path, "fig4_initial_hypergradient", {"authors_comparison": None})
    assert rows_by_key(tmp_path)["initial_hypergradient_authors"]["status"] == "not measured"


def test_omniglot_spread_and_reparametrization_ablation(tmp_path):
    write(tmp_path, "fig9_omniglot_sharing", {
        "separate": {"train_loss": 0.6, "test_loss": 1.3, "train_loss_std": 0.01, "test_loss_std": 0.05},
        "tied": {"train_loss": 0.9, "test_loss": 1.2, "train_loss_std": 0.02, "test_loss_std": 0.04},
        "learned": {"train_loss": 0.6, "test_loss": 1.17, "train_loss_std": 0.01, "test_loss_std": 0.02},
        "n_replicates": 3, "ablation_sizes": {"layer_sizes": [784, 30, 15, 55]},
        "meta_valid_loss": [[2.0, 1.5, 1.2]] * 3, "ablation_meta_valid_loss": [1.6, 1.4, 1.3],
        "ablation": {"reparam_learned": [0.5, 1.5], "penalty_learned": [0.4, 1.7],
                     "reparam_separate": [0.5, 1.6], "penalty_separate": [0.4, 1.65]}})
    rows = rows_by_key(tmp_path)
    assert rows["omniglot_separate_test"]["ours_text"] == "1.30 +- 0.050"
    assert "3 final trainings" in rows["omniglot_separate_test"]["note"]
    assert rows["omniglot_learned_best"]["status"] == "supports"
    assert "less than the largest spread" in rows["omniglot_learned_best"]["note"]  # 0.03 < 0.05
    assert rows["omniglot_reparametrization"]["status"] == "supports"
    assert "reparametrization +0.10, penalty -0.05" in rows["omniglot_reparametrization"]["note"]
    data = json.loads((tmp_path / "fig9_omniglot_sharing.json").read_text())
    write(tmp_path, "fig9_omniglot_sharing", dict(data, n_runs=9))   # 3 runs x 3 final trainings
    assert "spread over 9 final trainings (3 meta-learning runs x 3)" in \
        rows_by_key(tmp_path)["omniglot_separate_test"]["note"]


def test_chaos_onset_by_hand():
    log_alphas = np.round(np.arange(0.0, 3.05, 0.1), 1)            # 0.0, 0.1, ..., 3.0
    h = -np.ones(len(log_alphas))
    h[5] = 1.0                       # one lone sign change: the optimum, not chaos
    h[6:] = 1.0
    h[15::2] = -1.0                  # from 1.5 on, the sign flips at every grid point
    assert claims.chaos_onset(log_alphas, h) == pytest.approx(1.45)
    assert claims.chaos_onset(log_alphas, np.where(log_alphas < 0.5, -1.0, 1.0)) is None
    h_nan = np.where(log_alphas < 2.0, -1.0, np.nan)               # diverged from 2.0 on
    assert claims.chaos_onset(log_alphas, h_nan) == pytest.approx(1.95)


# --- the README section -------------------------------------------------------------------

README = f"# Title\n\nIntro | with a pipe.\n\n{claims.START}\nold table\n{claims.END}\n\nAfter.\n"


def test_rewrite_touches_only_the_marked_section():
    new = claims.rewrite_readme(README, "| new | table |")
    before, after = README.split(claims.START)[0], README.split(claims.END)[1]
    assert new == f"{before}{claims.START}\n| new | table |\n{claims.END}{after}"
    assert claims.rewrite_readme(new, "| new | table |") == new      # idempotent


def test_rewrite_without_markers_returns_none():
    assert claims.rewrite_readme("# Title\n", "table") is None
    assert claims.rewrite_readme(f"{claims.END}\n{claims.START}\n", "table") is None


def test_main_writes_json_and_readme(tmp_path, capsys):
    figures, readme = tmp_path / "figures", tmp_path / "README.md"
    figures.mkdir()
    readme.write_text(README)
    claims.main(["--figures", str(figures), "--readme", str(readme)])
    written = json.loads((figures / "claims.json").read_text())["claims"]
    assert [r["key"] for r in written] == [c.key for c in claims.CLAIMS]
    text = readme.read_text()
    assert text.startswith("# Title\n\nIntro | with a pipe.\n\n") and text.endswith("\n\nAfter.\n")
    assert "not yet run" in text and "old table" not in text


def test_main_without_markers_prints_the_table_and_leaves_the_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    claims.main(["--figures", str(tmp_path), "--readme", str(readme)])
    out = capsys.readouterr().out
    assert "| Claim | Paper | Ours |" in out and claims.START in out
    assert readme.read_text() == "# Title\n"


def test_no_readme_leaves_the_readme_alone(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    claims.main(["--figures", str(tmp_path), "--readme", str(readme), "--no-readme"])
    assert readme.read_text() == README and (tmp_path / "claims.json").exists()


def test_fig6_fig7_and_lowest_loss_claims_by_hand(tmp_path):
    write(tmp_path, "fig6_l2_penalties", {"log_penalties": np.log(np.linspace(0.001, 0.0312, 100)).tolist(),
                                          "scale": "paper"})
    write(tmp_path, "fig7_learned_training_set", {"colour_range": [-0.5, 0.33], "scale": "paper"})
    write(tmp_path, "fig10_chaos", {"log_alphas": [0.5, 1.0005005, 1.3008008, 2.0],
                                    "losses": [0.0289, 0.0095684, 0.0050833, None],
                                    "hypergradients": [-0.062098, -0.020635, -0.0095140, None],
                                    "scale": "paper"})
    rows = rows_by_key(tmp_path)
    assert rows["l2_penalty_scale"]["status"] == "supports"         # 0.0014 to 0.030
    assert rows["learned_images_range"]["status"] == "does not support"   # -0.5 is 67% off
    assert rows["chaos_same_run"]["ours"] == pytest.approx(0.0289 / 0.028806 - 1)   # 0.33%
    assert rows["chaos_same_run"]["status"] == "supports"
