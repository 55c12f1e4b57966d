"""The reversible-Adam schedule experiment (issue 20) on tiny synthetic data: parametrized
schedules against autograd through them, the seed-averaged meta-gradient, the constant
baseline, the held-out verdict, and its ledger claim (which must be able to fail)."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from reproducer import adam_experiment as ax
from reproducer import experiments
from reproducer.claims import CLAIMS, ledger
from reproducer.experiments import Setting, evaluate, final_loss, hypergradient

SETTING = Setting(layer_sizes=(6, 5, 3), n_train=30, n_valid=12, n_test=12, batch_size=8, T=6,
                  split="authors", center=True, draw="authors", optimizer="adam")
K = len(SETTING.layout)
LOG_SCALES = np.full(K, -1.0)


pytestmark = pytest.mark.usefixtures("synthetic_mnist")   # tests/conftest.py: synthetic data, no MNIST


def test_schedule_groups_by_hand():
    groups, n = ax.schedule_groups(4, 2, "phases", n_phases=2)
    assert n == 8                 # 2 phases x 2 blocks, for step sizes and for beta1s
    assert groups[:8].tolist() == [0, 1, 0, 1, 2, 3, 2, 3]      # (t, k) row-major
    assert groups[8:].tolist() == [4, 5, 4, 5, 6, 7, 6, 7]
    assert ax.schedule_groups(4, 2, "constant")[0].tolist() == [0] * 8 + [1] * 8
    assert ax.schedule_groups(4, 2, "per_block")[0][:8].tolist() == [0, 1] * 4
    groups, n = ax.schedule_groups(4, 2, "per_step")
    assert groups.tolist() == list(range(16)) and n == 16
    with pytest.raises(ValueError, match="kind must be one of"):
        ax.schedule_groups(4, 2, "per_layer")
    with pytest.raises(ValueError, match="n_phases"):
        ax.schedule_groups(4, 2, "phases", n_phases=5)


@pytest.mark.parametrize("kind", ax.PARAMETRIZATIONS)
def test_projected_hypergradient_is_autograd_through_the_parametrization(kind):
    # Independent of project(): autograd differentiates the indexing z[groups] itself.
    groups, n = ax.schedule_groups(SETTING.T, K, kind, n_phases=3)
    z = ax.start_z(n, -2.0, 0.8) + 0.1 * np.random.RandomState(1).randn(n)

    def loss_of_z(z_):
        return final_loss(anp.concatenate([z_[groups], LOG_SCALES]), 2, SETTING)
    _, d_hypers = hypergradient(SETTING, ax.expand(z, groups, LOG_SCALES), 2)
    assert np.allclose(ax.project(d_hypers, groups, n), grad(loss_of_z)(z), rtol=1e-8, atol=1e-12)


def test_start_z_and_expand_give_the_constant_schedule_of_experiments():
    groups, n = ax.schedule_groups(SETTING.T, K, "per_step")
    full = ax.expand(ax.start_z(n, -3.0, 0.9), groups, LOG_SCALES)
    assert np.allclose(full, experiments.initial_hypers(SETTING, -3.0, 0.9, -1.0))


def test_meta_gradient_is_the_mean_over_that_iterations_seeds():
    groups, n = ax.schedule_groups(SETTING.T, K, "per_block")
    z0 = ax.start_z(n, -2.0, 0.8)
    cache = {}
    z, record = ax.meta_learn(SETTING, z0, groups, LOG_SCALES, 2, 0.1, seeds_per_iter=3, seed=7,
                              n_jobs=1, cache=cache)
    by_hand = np.mean([ax.project(hypergradient(SETTING, ax.expand(z0, groups, LOG_SCALES), s)[1],
                                  groups, n) for s in (7, 8, 9)], axis=0)
    assert np.allclose(record["grad"][0], by_hand, rtol=1e-12)
    assert record["loss"].shape == (2, 3) and record["hypergradients"] == 6
    assert np.isnan(record["grad_cosine"][0])
    assert record["grad_cosine"][1] == pytest.approx(ax.cosine(record["grad"][0], record["grad"][1]))
    assert np.allclose(record["z"][0], z0) and not np.allclose(z, z0)
    assert len(cache) == 6       # seeds 7, 8, 9 at z0, then 10, 11, 12 at the next point
    again, _ = ax.meta_learn(SETTING, z0, groups, LOG_SCALES, 2, 0.1, seeds_per_iter=3, seed=7,
                             n_jobs=1, cache=cache)
    assert np.array_equal(again, z)                       # the cache changes nothing


def test_positive_control_recovers_from_a_tiny_step_size():
    # From exp(-7) (barely moves in 6 steps) the meta-gradient must push the step size up
    # and the held-out loss down: what the notebook's positive control checks at scale.
    groups, n = ax.schedule_groups(SETTING.T, K, "per_block")
    z0 = ax.start_z(n, -7.0, 0.5)
    z, record = ax.meta_learn(SETTING, z0, groups, LOG_SCALES, 6, 0.3, seeds_per_iter=2, n_jobs=1)
    assert np.all(z[:n // 2] > z0[:n // 2])
    seeds = [100, 101, 102]
    held = ax.held_out(SETTING, {"start": ax.expand(z0, groups, LOG_SCALES),
                                 "learned": ax.expand(z, groups, LOG_SCALES)}, seeds, n_jobs=1)
    assert np.all(held["learned"]["train_loss"] < held["start"]["train_loss"])   # every seed
    assert held["learned"]["mean"] < held["start"]["mean"] - 0.25


def test_normalized_gradient_descent_first_step_and_shrinking_steps():
    xs = []
    x = ax.normalized_gradient_descent(lambda x, i: 2 * x, np.array([4.0, -1.0]),
                                       lambda x, i, g: xs.append(x.copy()), num_iters=3, step_size=0.5)
    assert np.allclose(xs[1], [3.5, -0.875])              # eta = 0.5 / 8: the largest moves 0.5
    assert np.allclose(x, np.array([4.0, -1.0]) * (1 - 2 * 0.5 / 8) ** 3)


def test_signal_to_noise_and_cosines_by_hand():
    d = np.array([[1.0, 2.0], [3.0, 2.0], [np.nan, 0.0]])     # the nan seed is left out
    mean, sem, ratio = ax.signal_to_noise(d)
    assert np.allclose(mean, [2.0, 2.0]) and np.allclose(sem, [np.sqrt(2) / np.sqrt(2), 0.0])
    assert ratio[0] == pytest.approx(2.0) and np.isinf(ratio[1])
    assert ax.cosine([1, 0], [0, 2]) == 0 and ax.cosine([1, 1], [2, 2]) == pytest.approx(1)
    assert np.isnan(ax.cosine([0, 0], [1, 0]))
    assert ax.mean_pairwise_cosine([[1, 0], [0, 1], [1, 0], [np.nan, 1]]) == pytest.approx(1 / 3)


def test_constant_search_picks_the_best_mean_and_passes_over_diverged(monkeypatch):
    table = {(-5.0, 0.5): [0.3, 0.3], (-5.0, 0.9): [0.2, np.nan], (-4.0, 0.5): [0.25, 0.27],
             (-4.0, 0.9): [0.4, 0.4]}

    def fake_evaluate_many(setting, grid, seeds, n_jobs):
        rows = []
        for h in grid:
            key = (float(h[0]), round(float(1 / (1 + np.exp(-h[setting.T * K]))), 6))
            rows.append([[loss, 0.0] for loss in table[key]])
        return np.array(rows)
    monkeypatch.setattr(ax, "evaluate_many", fake_evaluate_many)
    losses, best = ax.constant_search(SETTING, np.array([-5.0, -4.0]), np.array([0.5, 0.9]),
                                      [0, 1], LOG_SCALES)
    assert losses.shape == (2, 2, 2) and best == (-4.0, 0.5)   # 0.2 has a diverged seed


def test_held_out_matches_evaluate_seed_by_seed():
    h = experiments.initial_hypers(SETTING, -3.0, 0.9, -1.0)
    held = ax.held_out(SETTING, {"a": h}, [3, 4], n_jobs=1)["a"]
    assert held["train_loss"][1] == pytest.approx(evaluate(SETTING, h, 4)[0])
    assert held["std"] == pytest.approx(np.std(held["train_loss"], ddof=1))


def test_frozen_weights_agree_with_float64_adam_and_count_what_stays_put(monkeypatch):
    h = experiments.initial_hypers(SETTING, -3.0, 0.9, -1.0)
    assert ax.frozen_weights(SETTING, h, 0) == {"frozen": 0, "max_difference": pytest.approx(0, abs=1e-9)}
    real_train = experiments.train

    def freezes_two(setting, hypers, seed):           # a run that leaves two weights at w0
        w = np.array(real_train(setting, hypers, seed))
        w[:2] = experiments.init_weights(setting.layout, hypers[-K:], seed, draw=setting.draw)[:2]
        return w
    monkeypatch.setattr(experiments, "train", freezes_two)
    assert ax.frozen_weights(SETTING, h, 0)["frozen"] == 2


def held_entry(losses):
    losses = np.array(losses, dtype=float)
    return dict(train_loss=losses.tolist(), mean=float(losses.mean()), std=float(losses.std(ddof=1)))


def test_judge_needs_a_margin_larger_than_the_spread():
    held = {"best_constant": held_entry([0.20, 0.21, 0.19]), "a": held_entry([0.150, 0.16, 0.14]),
            "b": held_entry([0.19, 0.20, 0.18])}
    verdict = ax.judge(held, ["a", "b"])
    assert verdict["best_learned"] == "a" and verdict["supports"]
    assert verdict["margin"] == pytest.approx(0.05) and verdict["spread"] == pytest.approx(0.01)
    assert not ax.judge(held, ["b"])["supports"]           # better by 0.01 = the spread: no


ADAM_CLAIM = [c for c in CLAIMS if c.figure == "reversible_adam"]


def adam_json(learned_losses, scale="paper", meta_losses=None):
    """A minimal reversible_adam.json: the start, the best constant and learned schedules
    (each with its meta-learning losses: meta_losses[name], else its held-out losses)."""
    meta_losses = meta_losses or {}
    held = {"start_poor": held_entry([0.60, 0.65, 0.62]), "start_default": held_entry([0.21, 0.20, 0.22]),
            "best_constant": held_entry([0.18, 0.19, 0.185])}
    held.update({name: held_entry(losses) for name, losses in learned_losses.items()})
    verdict = ax.judge(held, list(learned_losses))
    records = {name: {"loss": [[0.3, 0.3, 0.3], meta_losses.get(name, losses)]}
               for name, losses in learned_losses.items()}
    return dict(scale=scale, held_out=dict(seeds=[1, 2, 3], **held), verdict=verdict, records=records,
                recovery={"poor/per_block/hypergrad_adam": dict(gap_closed=0.9, within_spread_of_constant=True)},
                signal_to_noise=dict(per_block_ratio=[[-5.0, 3.0], [1.0, -0.5]],
                                     per_step=dict(fraction_above_2=0.2)),
                frozen_weights=dict(frozen=0, max_difference=1e-11))


def verdict_of(tmp_path, data):
    import json
    (tmp_path / "reversible_adam.json").write_text(json.dumps(data))
    (row,) = ledger(tmp_path, ADAM_CLAIM)
    return row


def test_adam_claim_supports_only_a_margin_beyond_the_spread(tmp_path):
    assert len(ADAM_CLAIM) == 1
    win = verdict_of(tmp_path, adam_json({"default/per_step/x": [0.15, 0.155, 0.16]}))
    assert win["status"] == "supports", win
    assert "margin" in win["note"]


def test_adam_claim_fails_when_nothing_was_learned(tmp_path):
    # No learning: the learned schedules are the starting ones (their very numbers).
    data = adam_json({"poor/per_block/x": [0.60, 0.65, 0.62], "default/per_step/x": [0.21, 0.20, 0.22]})
    assert verdict_of(tmp_path, data)["status"] == "does not support"
    tie = adam_json({"default/per_step/x": [0.18, 0.19, 0.185]})    # learned = the best constant
    assert verdict_of(tmp_path, tie)["status"] == "does not support"


def test_adam_claim_judges_the_schedule_its_meta_objective_chose_not_the_held_out_best(tmp_path):
    # A is best on the held-out seeds but B had the lower meta-objective: B is judged, and B
    # does not beat the constant, so picking the held-out winner would have been cherry-picking.
    data = adam_json({"default/per_step/A": [0.15, 0.155, 0.16], "default/phases/B": [0.19, 0.18, 0.185]},
                     meta_losses={"default/per_step/A": [0.20, 0.20, 0.20],
                                  "default/phases/B": [0.17, 0.17, 0.17]})
    row = verdict_of(tmp_path, data)
    assert row["status"] == "does not support" and "default/phases/B" in row["note"], row
    del data["records"]
    assert verdict_of(tmp_path, data)["status"] == "not measured"


def test_adam_claim_recomputes_the_verdict_and_is_not_judged_below_paper_scale(tmp_path):
    data = adam_json({"default/per_step/x": [0.21, 0.20, 0.22]})
    data["verdict"]["supports"] = True             # a stale or edited verdict is not trusted
    assert verdict_of(tmp_path, data)["status"] == "does not support"
    quick = verdict_of(tmp_path, adam_json({"default/per_step/x": [0.15, 0.155, 0.16]}, scale="quick"))
    assert quick["status"].startswith("not judged") and "supports" in quick["note"]
