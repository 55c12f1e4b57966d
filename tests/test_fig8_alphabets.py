"""Fig. 8's evidence for the paper's five alphabets: the matches measured on the paper's
figure are kept in the package, so a clone without that image still shows them."""
import json
from pathlib import Path

import pytest

from reproducer.authors import stored
from reproducer.data import OMNIGLOT_ALPHABETS, on_disk

ROOT = Path(__file__).resolve().parents[1]


def test_the_stored_matches_name_the_five_alphabets_upright_then_rotated():
    kept = stored("fig8_paper_figure_matches")
    assert (kept["rows"], kept["columns"]) == (10, 15)
    found = [m["alphabet"] for m in kept["matches"]]
    assert found[:5] == found[5:] == list(OMNIGLOT_ALPHABETS)
    assert all(m["score"] > m["runner_up_score"] + 0.1 for m in kept["matches"])


def test_the_stored_matches_ship_with_the_package():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'reproducer = ["authors_results/*.json"]' in pyproject


@pytest.mark.skipif(not on_disk("omniglot"), reason="Omniglot not on disk (set REPRODUCER_DATA)")
def test_without_the_paper_figure_the_smoke_run_reports_the_stored_matches(monkeypatch, tmp_path):
    import papermill
    monkeypatch.delenv("REPRODUCER_SCALE", raising=False)
    papermill.execute_notebook(ROOT / "notebooks" / "fig8_omniglot_alphabets.ipynb",
                               tmp_path / "executed.ipynb", kernel_name="python3", progress_bar=False,
                               parameters=dict(scale="smoke", output_dir=str(tmp_path),
                                               paper_figure=str(tmp_path / "absent.png")))
    written = json.loads((tmp_path / "fig8_omniglot_alphabets.json").read_text())
    assert written["paper_figure_matches"] == stored("fig8_paper_figure_matches")["matches"]
    assert written["paper_figure_matches_source"].startswith("stored")
