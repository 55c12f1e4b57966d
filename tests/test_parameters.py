"""A notebook's parameters: a bad value stops it at the top with one sentence naming the
value and its cell (reproducer.parameters), and REPRODUCER_SCALE says when it overrides
the parameters cell (resolve_parameters)."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest

from reproducer.parameters import RULES, ParameterError, check_parameters
from reproducer.run_notebook import resolve_parameters

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def refused(*sizes, **parameters):
    with pytest.raises(ParameterError) as error:
        check_parameters(*sizes, **parameters)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("parameters, named", [
    (dict(seed=-1), "seed = -1 in the parameters cell: it must be a non-negative integer"),
    (dict(seed=1.0), "seed = 1.0"),
    (dict(seed=True), "seed = True"),
    (dict(seed="0"), "seed = '0'"),
    (dict(gamma=1.5), "gamma = 1.5 in the parameters cell: it must be a number in (0, 1]"),
    (dict(gamma=0.0), "gamma = 0.0"),
    (dict(gamma="0.9"), "gamma = '0.9'"),
    (dict(log_alpha=float("nan")), "log_alpha = nan in the parameters cell: it must be a finite number"),
    (dict(log_alpha=None), "log_alpha = None"),
    (dict(n_jobs=0), "n_jobs = 0 in the parameters cell: it must be a non-zero integer"),
    (dict(w0=[1.0]), "w0 = [1.0]"),
    (dict(meta_mass=1.0), "meta_mass = 1.0"),
    (dict(prior_strength=-0.1), "prior_strength = -0.1"),
    (dict(init_corr=1.5), "init_corr = 1.5"),
])
def test_a_bad_value_of_the_parameters_cell_is_named(parameters, named):
    assert named in refused(**parameters)


@pytest.mark.parametrize("sizes, named", [
    (dict(T=-5), 'sizes["T"] = -5 in the sizes cell: it must be a positive integer'),
    (dict(T=0), 'sizes["T"] = 0'),
    (dict(T=10.5), 'sizes["T"] = 10.5'),
    (dict(meta_iters="3"), 'sizes["meta_iters"] = \'3\''),
    (dict(setting=dict(T=-1, n_train=10)), 'sizes["setting"]["T"] = -1 in the sizes cell'),
    (dict(setting=dict(layer_sizes=(100, 10))), 'sizes["setting"]["layer_sizes"] = (100, 10)'),
    (dict(setting=dict(layer_sizes=(784, 0, 10))), "starting with 784"),
    (dict(setting=dict(split="mine")), '"authors" or "random"'),
    (dict(steps=[10, -30]), 'sizes["steps"] = [10, -30]'),
    (dict(bit_gammas=[0.5, 1.0]), 'sizes["bit_gammas"]'),
    (dict(grid=[]), 'sizes["grid"] = []'),
])
def test_a_bad_size_is_named_with_its_place_in_the_sizes_cell(sizes, named):
    assert named in refused(sizes)


def test_a_minibatch_larger_than_the_training_set_is_refused():
    message = refused(dict(setting=dict(n_train=100, batch_size=200)))
    assert 'sizes["setting"]["batch_size"] = 200 is larger than sizes["setting"]["n_train"] = 100' in message


def test_good_values_pass_numpy_integers_included():
    check_parameters(dict(T=np.int64(5), n_train=np.int64(10), batch_size=10, layer_sizes=[784, 10],
                          setting=dict(center=True, split="authors")),
                     seed=0, gamma=1.0, log_alpha=-3, n_jobs=-1, w0=(0.5, np.float64(1.0)),
                     not_a_known_name=object())   # a name without a rule is not checked


# The notebooks themselves: every value they pass has a rule, and every scale's sizes pass

def code_cells(notebook):
    return ["".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
            if c["cell_type"] == "code"]


def checked(notebook):
    """(parameters cell source, sizes cell source) of a notebook that calls check_parameters."""
    cells = json.loads(notebook.read_text())["cells"]
    parameters = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    sizes = [s for s in code_cells(notebook) if "check_parameters(" in s]
    return parameters, sizes[0] if sizes else None


CHECKED = [nb for nb in NOTEBOOKS if checked(nb)[1]]


def test_the_figure_notebooks_check_their_parameters():
    assert {nb.stem for nb in CHECKED} >= {
        "fig1_toy_meta_learning", "fig4_initial_hypergradient", "fig6_l2_penalties",
        "fig7_learned_training_set", "fig8_omniglot_alphabets", "fig9_omniglot_sharing",
        "fig10_chaos", "learning_schedules", "memory_comparison", "data_augmentation", "tutorial"}


def names_in(values):
    for name, value in values.items():
        if isinstance(value, dict):
            yield from names_in(value)
        else:
            yield name


@pytest.mark.parametrize("notebook", CHECKED, ids=lambda p: p.stem)
def test_a_notebook_checks_every_parameter_and_all_its_sizes_pass(notebook):
    parameters, sizes_cell = checked(notebook)
    cell_names = {s.targets[0].id for s in ast.parse(parameters).body}
    call = next(node for node in ast.walk(ast.parse(sizes_cell))
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check_parameters")
    # scale and output_dir are resolve_parameters' to check
    assert {k.arg for k in call.keywords} >= cell_names - {"scale", "output_dir"}
    for scale in ("paper", "quick", "smoke"):
        namespace = {}
        exec(parameters, namespace)
        namespace["scale"] = scale
        exec(sizes_cell, namespace)                  # runs check_parameters on this scale's sizes
        assert set(names_in(namespace["sizes"])) <= set(RULES), set(names_in(namespace["sizes"])) - set(RULES)
    assert cell_names - {"scale"} <= set(RULES)


# REPRODUCER_SCALE and the parameters cell

def test_reproducer_scale_overriding_the_cell_says_so(monkeypatch, capsys):
    monkeypatch.setenv("REPRODUCER_SCALE", "smoke")
    assert resolve_parameters("quick", "build/x")[0] == "smoke"
    said = capsys.readouterr().out
    assert "REPRODUCER_SCALE=smoke overrides scale = 'quick' of the parameters cell" in said


def test_no_word_when_reproducer_scale_agrees_or_is_unset(monkeypatch, capsys):
    monkeypatch.setenv("REPRODUCER_SCALE", "smoke")      # as the runner sets it
    assert resolve_parameters("smoke", "build/x")[0] == "smoke"
    monkeypatch.delenv("REPRODUCER_SCALE")
    assert resolve_parameters("quick", "build/x")[0] == "quick"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("environment, scale, named", [
    ("huge", "quick", "REPRODUCER_SCALE='huge' overrides the parameters cell's scale but is not a scale"),
    (None, "big", "scale = 'big' in the parameters cell: it must be \"paper\" or \"quick\" or \"smoke\""),
    (None, 3, "scale = 3 in the parameters cell"),
])
def test_an_unknown_scale_is_refused_naming_where_it_came_from(monkeypatch, environment, scale, named):
    if environment is None:
        monkeypatch.delenv("REPRODUCER_SCALE", raising=False)
    else:
        monkeypatch.setenv("REPRODUCER_SCALE", environment)
    with pytest.raises(ParameterError, match=None) as error:
        resolve_parameters(scale, "build/x")
    assert named in str(error.value)


def test_a_bad_output_dir_is_refused(monkeypatch):
    monkeypatch.delenv("REPRODUCER_SCALE", raising=False)
    with pytest.raises(ParameterError, match="output_dir = 5 in the parameters cell"):
        resolve_parameters("quick", 5)


def test_a_notebook_run_with_a_bad_parameter_stops_at_the_top_naming_it(monkeypatch, tmp_path):
    """The whole path, through papermill: Fig. 1 (no data) with gamma = 1.5 injected."""
    import papermill
    monkeypatch.delenv("REPRODUCER_SCALE", raising=False)
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(ROOT / "notebooks" / "fig1_toy_meta_learning.ipynb",
                                   tmp_path / "executed.ipynb", kernel_name="python3",
                                   parameters=dict(scale="smoke", output_dir=str(tmp_path / "out"),
                                                   gamma=1.5), progress_bar=False)
    assert error.value.ename == "ParameterError"
    assert "gamma = 1.5 in the parameters cell: it must be a number in (0, 1]" in error.value.evalue
    assert not (tmp_path / "out").exists()
