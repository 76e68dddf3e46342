"""Self-distillation & ensembles page under AppTest (synthetic data): specs from the widgets, refusals
before anything starts, hosted caps, and a finished result's table and chart."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from kdviz.data import synthetic_bundle
from kdviz.experiments.catalogue import CatalogueConfig
from kdviz.experiments.catalogue_jobs import catalogue_events

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "catalogue.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _handles(at: AppTest) -> dict:
    return at.session_state["_kdviz_session_jobs"].handles if "_kdviz_session_jobs" in at.session_state else {}


def test_born_again_spec_has_one_generation_per_temperature(no_spawn):
    at = _page()
    assert at.text_input(key="cat_born_again_temps").value == "1, 4, 8"  # the measured defaults
    at.text_input(key="cat_born_again_temps").set_value("2, 5").run()
    at.button(key="cat_born_again_run").click().run()
    spec = _handles(at)["cat_born_again"].spec
    assert spec["fn"] == "kdviz.experiments.catalogue_jobs:catalogue_job" and spec["data"] == "synthetic"
    assert spec["generations"] == 3 and spec["temperatures"] == (2.0, 5.0) and spec["seeds"] == 3


@pytest.mark.parametrize("kind, key, value, message", [
    ("mutual", "peers", 5, "2 to 4 peers"),
    ("mutual", "peers", 1, "2 to 4 peers"),
    ("born_again", "temps", "", "at least one temperature"),
    ("born_again", "temps", "1,2,3,4,5,6", "generations"),
    ("ta", "assistant", "abc", "whole numbers"),
])
def test_bad_input_is_refused_and_nothing_starts(no_spawn, kind, key, value, message):
    at = _page()
    before = _handles(at).get(f"cat_{kind}")  # AppTests in one process share the session registry
    widget = at.number_input(key=f"cat_{kind}_{key}") if key == "peers" else at.text_input(key=f"cat_{kind}_{key}")
    widget.set_value(value).run()
    at.button(key=f"cat_{kind}_run").click().run()
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert _handles(at).get(f"cat_{kind}") is before  # nothing started


def test_ensemble_modes_are_sent(no_spawn):
    at = _page()
    at.multiselect(key="cat_ensemble_modes").set_value(["probs", "kl_mean"]).run()
    at.button(key="cat_ensemble_run").click().run()
    assert _handles(at)["cat_ensemble"].spec["modes"] == ("probs", "kl_mean")


@pytest.fixture
def hosted(monkeypatch):
    from kdviz.ui.hosted import _server_limits

    monkeypatch.setenv("KDVIZ_HOSTED", "1")
    _server_limits.clear()  # hosted mode is read once per server
    yield
    _server_limits.clear()


def test_hosted_mode_caps_peers_and_seeds(no_spawn, hosted):
    at = _page()
    at.number_input(key="cat_mutual_peers").set_value(3).run()
    at.button(key="cat_mutual_run").click().run()
    assert any("2 to 2 peers" in e.value for e in at.error)
    at.number_input(key="cat_mutual_peers").set_value(2).run()
    at.number_input(key="cat_mutual_seeds").set_value(5).run()
    at.button(key="cat_mutual_run").click().run()
    spec = _handles(at)["cat_mutual"].spec
    assert spec["seeds"] == 3 and spec["max_peers"] == 2


@pytest.fixture(scope="module")
def ba_result() -> dict:
    torch.set_num_threads(1)
    cfg = CatalogueConfig(kind="born-again", seeds=2, transfer="subset:200", epochs=1, hidden=(16,), generations=2, temperatures=(3.0,))
    return list(catalogue_events(cfg, synthetic_bundle(300, 200, seed=4, noise=1.2), "cpu"))[-1]


def test_finished_result_shows_table_chart_and_noise_verdicts(no_spawn, ba_result):
    at = _page()
    at.button(key="cat_born_again_run").click().run()
    handle = _handles(at)["cat_born_again"]
    handle.result = ba_result
    handle._finish("done", "finished")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe)
    assert list(table["run"]) == ["gen0", "gen1", "ensemble of generations"]
    assert table["test accuracy (n=2)"][0] == f"{100 * ba_result['rows'][0]['mean']:.2f} ± {100 * ba_result['rows'][0]['std']:.2f}%"
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "cat_born_again_bars")
    assert chart["data"][0]["y"] == [r["mean"] for r in ba_result["rows"]]
    assert any("within noise" in c.value for c in at.caption)
