"""Hyperparameters inside the training run (Figs. 6-9, data augmentation): penalties,
training pixels, preprocessing, augmentation stencils and the multitask coupling. Each
hypergradient through sgd_momentum is checked against autograd through the unrolled
float64 loop; the pieces themselves against values worked out by hand or by a loop."""
import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from reproducer import sgd_momentum
from reproducer.augmentation import (augment, convolve, identity_preprocessing, preprocess,
                                     random_shifts, step_noise)
from reproducer.models import (authors_init, batch_slice, cross_entropy, init_weights, minibatch,
                               mlp_layout, mlp_predict)
from reproducer.multitask import (authors_split, character_partition, coupling_matrices,
                                  initial_coupling_hypers, mean_loss, multitask_layout,
                                  pad_tasks, predict, resplit, shared_weights,
                                  sharing_correlations, sharing_hypers, sharing_transforms,
                                  split_tasks, task_losses, total_penalty, train_shared,
                                  unpack_sharing, without_couplings)
from reproducer.penalties import (correlations, coupling_matrix, coupling_penalty, n_pairs,
                                  penalty_prior, per_weight_l2)
from reproducer.sgd import sgd_momentum_unrolled

RS = np.random.RandomState(0)
IMAGES = RS.rand(24, 784) * (RS.rand(24, 784) < 0.3)       # sparse "ink" in [0, 1]
LABELS = np.eye(3)[RS.randint(0, 3, 24)]
LAYOUT = mlp_layout([784, 3])
T = 12


def relative_error(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


def assert_hypergradients_agree(loss, theta, w0, validation):
    """d validation(w_T) / d theta through sgd_momentum and through the unrolled loop."""
    alphas, gammas = np.full(T, 0.5), np.full(T, 0.9)
    d_theta = {train: grad(lambda th: validation(train(loss, w0, alphas, gammas, th)))(theta)
               for train in (sgd_momentum, sgd_momentum_unrolled)}
    reference = d_theta[sgd_momentum_unrolled]
    assert np.max(np.abs(reference)) > 0           # a zero reference would prove nothing
    assert relative_error(d_theta[sgd_momentum], reference) <= 1e-6


def validation(w):
    return cross_entropy(mlp_predict(LAYOUT, w, IMAGES[12:]), LABELS[12:])


def w0():
    return init_weights(LAYOUT, [-2.0, -2.0], seed=1)


# --- hypergradients against the unrolled loop -----------------------------------------------

def test_per_weight_penalties_hypergradient():
    def loss(w, theta, t):
        idx = minibatch(t, 12, 6)
        return (cross_entropy(mlp_predict(LAYOUT, w, IMAGES[idx]), LABELS[idx])
                + per_weight_l2(w[LAYOUT.slices["layer1_weights"]], theta))
    theta = RS.uniform(-4, -1, 784 * 3)
    assert_hypergradients_agree(loss, theta, w0(), validation)


def test_authors_fig6_objective_hypergradient():
    """Fig. 6 as the authors ran it: a penalty on every parameter (biases too), consecutive
    minibatches, and a prior on the penalties added to the meta-objective."""
    def loss(w, theta, t):
        idx = batch_slice(t, 12, 5)                   # slices of 5, 5, 2: the short last one too
        return cross_entropy(mlp_predict(LAYOUT, w, IMAGES[idx]), LABELS[idx]) + per_weight_l2(w, theta)
    theta = RS.uniform(-4, -1, LAYOUT.size)
    alphas, gammas = np.full(T, 0.5), np.full(T, 0.9)
    start = authors_init(LAYOUT.size, -2.0, seed=1)
    d_theta = {train: grad(lambda th: validation(train(loss, start, alphas, gammas, th))
                           + penalty_prior(th, 0.5))(theta)
               for train in (sgd_momentum, sgd_momentum_unrolled)}
    reference = d_theta[sgd_momentum_unrolled]
    bias_part = reference[LAYOUT.slices["layer1_biases"]]
    assert np.max(np.abs(bias_part)) > 0                  # the biases' penalties are learned
    assert relative_error(d_theta[sgd_momentum], reference) <= 1e-6


def test_authors_fig7_images_and_l2_hypergradient():
    """Fig. 7 as the authors ran it: theta = [log L2 on all parameters, the pixels]."""
    def loss(w, theta, t):
        images = anp.reshape(theta[1:], (3, 784))
        return cross_entropy(mlp_predict(LAYOUT, w, images), np.eye(3)) + anp.exp(theta[0]) * anp.sum(w ** 2)
    theta = np.concatenate([[np.log(0.01)], 0.01 * RS.randn(3 * 784)])
    assert_hypergradients_agree(loss, theta, authors_init(LAYOUT.size, -4.0, 0), validation)


def test_penalty_prior_by_hand():
    assert penalty_prior(np.log([1.0, 2.0, 3.0]), 0.5) == pytest.approx(0.5 * (1 + 4 + 9))


def test_learned_training_images_hypergradient():
    def loss(w, theta, t):
        return cross_entropy(mlp_predict(LAYOUT, w, anp.reshape(theta, (3, 784))), np.eye(3))
    assert_hypergradients_agree(loss, np.zeros(3 * 784), np.zeros(LAYOUT.size), validation)


def test_preprocessing_hypergradient():
    def loss(w, theta, t):
        idx = minibatch(t, 12, 6)
        return cross_entropy(mlp_predict(LAYOUT, w, preprocess(IMAGES[idx], theta)), LABELS[idx])
    theta = identity_preprocessing() + 0.1 * RS.randn(2 * 784)
    assert_hypergradients_agree(
        loss, theta, w0(),
        lambda w: cross_entropy(mlp_predict(LAYOUT, w, preprocess(IMAGES[12:], theta)), LABELS[12:]))


def test_augmentation_stencils_hypergradient():
    def loss(w, theta, t):
        idx = minibatch(t, 12, 4)
        x = IMAGES[idx]
        inputs = anp.concatenate([x, augment(x, anp.reshape(theta, (2, 3, 3)), step_noise(t, 2))])
        return cross_entropy(mlp_predict(LAYOUT, w, inputs), np.tile(LABELS[idx], (2, 1)))
    assert_hypergradients_agree(loss, 0.1 * RS.randn(2 * 9), w0(), validation)


@pytest.mark.parametrize("tied_layers", [(), (1,)])
def test_multitask_coupling_hypergradient(tied_layers):
    n_tasks, sizes = 3, [784, 4, 3]
    layout = multitask_layout(sizes, n_tasks, tied_layers)
    counts = [5, 4, 6]
    part = pad_tasks([IMAGES[:k] for k in counts], [np.argmax(LABELS[:k], 1) for k in counts], 3)
    valid = pad_tasks([IMAGES[12:12 + k] for k in counts],
                      [np.argmax(LABELS[12:12 + k], 1) for k in counts], 3)

    def loss(w, theta, t):
        return anp.sum(task_losses(layout, w, part)) + total_penalty(layout, w, theta, n_tasks)
    theta = initial_coupling_hypers(2, n_tasks, -2.0, -1.0) + 0.3 * RS.randn(2 * 6)
    w_start = init_weights(layout, np.full(len(layout), -1.0), seed=2)
    assert_hypergradients_agree(loss, theta, w_start, lambda w: mean_loss(layout, w, valid))


def test_reparametrized_sharing_hypergradient():
    """d valid / d theta for theta = (T of both layers, log L2), through the reversible
    training of z plus the direct path T -> w = T z, against the unrolled float64 loop."""
    n_tasks, sizes = 3, [784, 4, 3]
    layout = multitask_layout(sizes, n_tasks)
    counts = [5, 4, 6]
    part = pad_tasks([IMAGES[:k] for k in counts], [np.argmax(LABELS[:k], 1) for k in counts], 3)
    valid = pad_tasks([IMAGES[12:12 + k] for k in counts],
                      [np.argmax(LABELS[12:12 + k], 1) for k in counts], 3)
    theta = sharing_hypers(sharing_transforms([0.5, 0.3], n_tasks) + 0.1 * RS.randn(2, 3, 3), -2.0)
    d_theta = {unrolled: grad(lambda th: mean_loss(layout, train_shared(
        layout, th, part, 3, T, 0.5, 0.9, -1.0, n_tasks, unrolled=unrolled), valid))(theta)
        for unrolled in (False, True)}
    reference = d_theta[True]
    assert np.all(np.abs(reference[:-1]) > 0) and abs(reference[-1]) > 0
    assert relative_error(d_theta[False], reference) <= 1e-6
    assert abs(d_theta[False][-1] - reference[-1]) <= 1e-6 * abs(reference[-1])


def test_shared_weights_by_hand_and_the_authors_settings():
    n_tasks, layout = 3, multitask_layout([2, 2, 1], 3)
    z = RS.randn(layout.size)
    transforms = RS.randn(2, 3, 3)
    w = shared_weights(layout, z, transforms)
    for name in layout.names:                       # w_i = sum_j T[i, j] z_j, block by block
        k = int(name[5]) - 1
        Z, W = layout.get(z, name), layout.get(w, name)
        for i in range(n_tasks):
            np.testing.assert_allclose(W[i], sum(transforms[k, i, j] * Z[j] for j in range(3)))
    separate = shared_weights(layout, z, sharing_transforms([0, 0], n_tasks))
    np.testing.assert_array_equal(separate, z)
    tied = shared_weights(layout, z, sharing_transforms([1, 0], n_tasks))
    W1 = layout.get(tied, "layer1_weights")         # every task: the mean of the three z's
    np.testing.assert_allclose(W1, np.broadcast_to(layout.get(z, "layer1_weights").mean(0), W1.shape))
    np.testing.assert_array_equal(layout.get(tied, "layer2_weights"), layout.get(z, "layer2_weights"))
    np.testing.assert_allclose(sharing_transforms([0.5], 2)[0], [[0.75, 0.25], [0.25, 0.75]])
    np.testing.assert_allclose(sharing_correlations(np.eye(3)), np.eye(3))
    np.testing.assert_allclose(sharing_correlations(np.full((3, 3), 1 / 3)), np.ones((3, 3)))
    theta = sharing_hypers(transforms, -4.0)
    back, log_l2 = unpack_sharing(theta, 2, 3)
    np.testing.assert_array_equal(back, transforms) and log_l2 == -4.0
    with pytest.raises(ValueError, match="shape"):
        unpack_sharing(theta[:-1], 2, 3)
    with pytest.raises(ValueError, match="tied"):
        shared_weights(multitask_layout([2, 2, 1], 3, tied_layers=(1,)), z[:12], transforms)


def test_character_partition_and_the_authors_split():
    labels = np.repeat([0, 1, 2], 15)
    train, test = character_partition(labels, (12, 3), np.random.RandomState(0))
    assert np.all(np.bincount(labels[train]) == 12) and np.all(np.bincount(labels[test]) == 3)
    assert not set(train) & set(test) and len(train) + len(test) == 45
    other = character_partition(labels, (12, 3), np.random.RandomState(1))[0]
    assert not np.array_equal(train, other)        # a new split per seed
    with pytest.raises(ValueError, match="exactly 15"):
        character_partition(labels[1:], (12, 3), np.random.RandomState(0))
    images = RS.rand(45, 4)
    tasks = [dict(train_images=images, train_labels=labels),
             dict(train_images=images[::-1].copy(), train_labels=labels[::-1].copy())]
    split = authors_split(tasks, seed=0)
    mean = images.mean(0)                           # both tasks hold the same 45 images
    x, y = split["train"][0][0], split["train"][1][0]
    assert x.shape == (36, 4) and np.all(np.bincount(y) == 12)
    np.testing.assert_allclose(np.concatenate([x, split["test"][0][0]]).sum(0) + 45 * mean,
                               images.sum(0))
    tr, va = resplit(split["train"][0], split["train"][1], seed=3)
    assert tr[0].shape == (2, 30, 4) and va[0].shape == (2, 6, 4)
    np.testing.assert_allclose(va[2].sum(axis=1), 1.0)


# --- the pieces, by hand ---------------------------------------------------------------------

def test_per_weight_l2_by_hand():
    w = np.array([1.0, -2.0, 3.0])
    assert per_weight_l2(w, np.log([0.5, 1.0, 2.0])) == pytest.approx(0.5 + 4.0 + 18.0)


def test_coupling_matrix_of_two_tasks_by_hand():
    d1, d2, c = 0.5, 2.0, 3.0
    A = coupling_matrix(np.log([d1, d2]), np.log([c]))
    np.testing.assert_allclose(A, [[d1 + c, -c], [-c, d2 + c]])
    w = np.array([[1.0, 2.0], [-1.0, 0.5]])          # two tasks, two weights each
    by_hand = sum(d1 * w[0, p] ** 2 + d2 * w[1, p] ** 2 + c * (w[0, p] - w[1, p]) ** 2
                  for p in range(2))
    assert coupling_penalty(w, A) == pytest.approx(by_hand)


def test_coupling_matrix_pairs_follow_triu_order_and_separate_tasks_are_independent():
    log_c = np.log([1.0, 2.0, 3.0])                  # pairs (0, 1), (0, 2), (1, 2)
    A = coupling_matrix(np.zeros(3), log_c)
    np.testing.assert_allclose([A[0, 1], A[0, 2], A[1, 2]], [-1.0, -2.0, -3.0])
    np.testing.assert_allclose(A.sum(axis=1), np.ones(3))  # the Laplacian rows sum to zero
    assert n_pairs(10) == 45
    separate = coupling_matrix(np.log([1.0, 4.0, 9.0]), np.full(3, -np.inf))
    np.testing.assert_allclose(correlations(separate), np.eye(3))


def test_convolve_against_a_direct_loop():
    x, stencil = RS.rand(2, 784), RS.randn(5, 5)
    expected = np.zeros((2, 28, 28))
    images = x.reshape(2, 28, 28)
    for n in range(2):
        for i in range(28):
            for j in range(28):
                for a in range(5):
                    for b in range(5):
                        if 0 <= i + a - 2 < 28 and 0 <= j + b - 2 < 28:
                            expected[n, i, j] += stencil[a, b] * images[n, i + a - 2, j + b - 2]
    np.testing.assert_allclose(convolve(x, stencil), expected.reshape(2, 784), rtol=1e-12)


def test_a_centre_stencil_is_the_identity_and_augment_adds_eps_times_it():
    x = RS.rand(3, 784)
    centre = np.zeros((3, 3))
    centre[1, 1] = 1.0
    np.testing.assert_allclose(convolve(x, centre), x)
    np.testing.assert_allclose(augment(x, np.array([centre, 2 * centre]), np.array([0.5, -1.0])),
                               x * (1 + 0.5 - 2.0))


@pytest.mark.parametrize("shape", [(4, 4), (2, 2), (3, 5), (9,)])
def test_an_even_or_non_square_stencil_is_refused(shape):
    """An even stencil has no centre: it used to be applied off-centre, shifting every
    image by half a pixel, without a word."""
    with pytest.raises(ValueError, match=rf"odd side.*got shape \({shape[0]},"):
        convolve(RS.rand(2, 784), np.ones(shape))
    with pytest.raises(ValueError, match="odd side"):
        augment(RS.rand(2, 784), np.ones((1,) + shape), np.ones(1))


def test_initial_stencils_of_even_size_are_refused():
    from reproducer.augmentation import initial_stencils
    with pytest.raises(ValueError, match=r"odd side.*got shape \(4, 4\)"):
        initial_stencils(2, 4, 0.01)
    assert initial_stencils(2, 3, 0.01).shape == (2, 3, 3)


def test_step_noise_is_deterministic_in_t():
    assert np.array_equal(step_noise(7, 3, seed=1), step_noise(7, 3, seed=1))
    assert not np.array_equal(step_noise(7, 3, seed=1), step_noise(8, 3, seed=1))
    assert not np.array_equal(step_noise(7, 3, seed=1), step_noise(7, 3, seed=2))


def test_random_shifts_move_whole_pixels_deterministically():
    x = np.zeros((1, 784))
    x[0, 14 * 28 + 14] = 1.0                          # one ink pixel in the middle
    shifted = random_shifts(x, t=3, max_shift=2, seed=0)
    assert np.array_equal(shifted, random_shifts(x, t=3, max_shift=2, seed=0))
    i, j = divmod(int(np.argmax(shifted)), 28)
    assert shifted.sum() == 1.0 and abs(i - 14) <= 2 and abs(j - 14) <= 2


def test_preprocess_by_hand():
    x = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(preprocess(x, np.array([2.0, 3.0, 0.5, -1.0])), [[2.5, 5.0]])
    np.testing.assert_allclose(preprocess(x, identity_preprocessing(2)), x)


def test_multitask_networks_are_the_single_task_networks():
    n_tasks, sizes = 3, [784, 4, 3]
    layout, single = multitask_layout(sizes, n_tasks), mlp_layout(sizes)
    w = RS.randn(layout.size)
    logits = predict(layout, w, np.stack([IMAGES[:5]] * n_tasks))
    for task in range(n_tasks):
        w_task = np.concatenate([layout.get(w, name)[task].ravel() for name in layout.names])
        np.testing.assert_allclose(logits[task], mlp_predict(single, w_task, IMAGES[:5]))


def test_padded_task_losses_are_each_tasks_mean_cross_entropy():
    n_tasks, sizes = 2, [784, 3]
    layout, single = multitask_layout(sizes, n_tasks), mlp_layout(sizes)
    w = RS.randn(layout.size)
    part = pad_tasks([IMAGES[:5], IMAGES[5:12]], [np.argmax(LABELS[:5], 1), np.argmax(LABELS[5:12], 1)], 3)
    losses = task_losses(layout, w, part)
    for task, rows in enumerate([slice(0, 5), slice(5, 12)]):
        w_task = np.concatenate([layout.get(w, name)[task].ravel() for name in layout.names])
        assert losses[task] == pytest.approx(
            cross_entropy(mlp_predict(single, w_task, IMAGES[rows]), LABELS[rows]))


def test_a_tied_layer_is_one_copy_and_its_penalty_counts_every_task():
    layout = multitask_layout([784, 4, 3], 3, tied_layers=(1,))
    assert layout.shapes["layer1_weights"] == (1, 784, 4)
    assert layout.shapes["layer2_weights"] == (3, 4, 3)
    w = np.zeros(layout.size)
    w[layout.slices["layer1_weights"]] = 1.0
    hypers = initial_coupling_hypers(2, 3, np.log(0.5), 0.0)
    # three identical copies: the couplings cancel, 3 x 0.5 x (784 x 4) remains
    assert total_penalty(layout, w, hypers, 3) == pytest.approx(3 * 0.5 * 784 * 4)
    assert len(coupling_matrices(hypers, 2, 3)) == 2


def test_without_couplings_keeps_the_l2_strengths_and_separates_the_tasks():
    hypers = initial_coupling_hypers(2, 3, np.log(0.5), 0.0)
    hypers[0] = np.log(2.0)                            # task 1's L2 in layer 1
    A = coupling_matrices(without_couplings(hypers, 2, 3), 2, 3)
    np.testing.assert_array_equal(A[0], np.diag([2.0, 0.5, 0.5]))
    np.testing.assert_array_equal(A[1], np.diag([0.5, 0.5, 0.5]))
    assert hypers[3] == 0.0                            # the input is left as it was


def _tasks(sizes, drawers=(1, 2, 3, 4)):
    """Fake Omniglot task dicts: task i has sizes[i] characters, each drawn once by every
    drawer, and one test image per character."""
    tasks = []
    for n in sizes:
        labels = np.repeat(np.arange(n), len(drawers))
        tasks.append(dict(train_images=RS.rand(len(labels), 784), train_labels=labels,
                          train_drawers=np.tile(drawers, n),
                          test_images=RS.rand(n, 784), test_labels=np.arange(n)))
    return tasks


def test_split_tasks_centres_on_the_mean_training_image_and_keeps_padding_zero():
    tasks = _tasks([3, 5])
    raw, centred = split_tasks(tasks, 1, n_outputs=5, center=False), split_tasks(tasks, 1, n_outputs=5)
    inputs, _, weights = raw["train"]
    real = weights > 0
    mean = inputs[real].mean(axis=0)              # from the uncentred split
    assert real.sum() == (3 + 5) * 3               # 3 of the 4 drawers train
    for part in ("train", "valid", "test"):
        x, y, w = centred[part]
        np.testing.assert_allclose(x[w > 0], raw[part][0][w > 0] - mean)
        assert np.all(x[w == 0] == 0)
        np.testing.assert_array_equal(y, raw[part][1])
    np.testing.assert_allclose(centred["train"][0][real].mean(axis=0), 0, atol=1e-12)


def test_split_tasks_rejects_a_validation_set_that_leaves_no_training_drawers():
    with pytest.raises(ValueError, match="n_valid_drawers must be between 1 and 3"):
        split_tasks(_tasks([2]), 4, n_outputs=2)
