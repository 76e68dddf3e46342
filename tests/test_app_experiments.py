"""Experiments page under AppTest with synthetic data: scenario picker, sweeps, one-click exercises."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from kdviz.experiments import sweeps as sw

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "experiments.py")
TINY = (("student_hidden", (16,)), ("teacher_hidden", (32,)), ("teacher_epochs", 2), ("epochs", 3),
        ("batch_size", 32), ("n_labelled", 60), ("lr", 1e-2))


@pytest.fixture(scope="module")
def sweep_result() -> dict:
    torch.set_num_threads(1)
    events = list(sw.sweep_job({"data": "synthetic", "sweep": {"param": "T", "values": [1, 4], "seeds": 2, "overrides": dict(TINY)}}))
    assert events[-1]["type"] == "result", events[-1]
    return events[-1]


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _spec(at: AppTest, job: str) -> dict:
    return at.session_state["_kdviz_session_jobs"].handles[job].spec


def test_scenario_picker_sends_the_chosen_scenario(no_spawn):
    at = _page()
    kind = at.selectbox(key="exp_kind")
    assert kind.options == ["The digit the student never saw", "Few labels", "Unlabelled transfer set", "Hinton's MNIST setting"]
    kind.set_value("few-labels").run()
    assert at.number_input(key="exp_T").value == 8.0  # the preset's own value
    at.number_input(key="exp_n_labelled").set_value(200).run()
    at.number_input(key="exp_seeds").set_value(3).run()
    at.button(key="exp_run").click().run()
    spec = _spec(at, "exp_scenario")
    assert spec["fn"] == "kdviz.experiments.scenarios:few_labels_job" and spec["data"] == "synthetic"
    assert spec["overrides"] == {"seeds": 3, "T": 8.0, "alpha": 0.9, "epochs": 20.0, "n_labelled": 200}


def test_hinton_preset_warns_and_resumes_from_a_fixed_folder(no_spawn):
    at = _page()
    at.selectbox(key="exp_kind").set_value("hinton").run()
    assert any("resumable" in w.value for w in at.warning)
    at.button(key="exp_run").click().run()
    first = _spec(at, "exp_scenario")["run_dir"]
    at.button(key="exp_run").click().run()
    assert first.endswith("hinton-synthetic-T20-a0.9") and _spec(at, "exp_scenario")["run_dir"] == first


def test_exercises_are_one_click_each(no_spawn):
    at = _page()
    for name in sw.EXERCISES:
        at.button(key=f"exp_ex_{name}").click().run()
        spec = _spec(at, "exp_sweep")
        assert spec["fn"] == "kdviz.experiments.sweeps:sweep_job" and spec["exercise"] == name
        assert len(sw.config_from_spec(spec).seeds) >= 3


def test_custom_sweep_spec_and_bad_values(no_spawn):
    at = _page()
    at.selectbox(key="exp_sweep_param").set_value("alpha").run()
    assert at.text_input(key="exp_sweep_values").value == "0, 0.25, 0.5, 0.75, 0.9, 1"
    at.text_input(key="exp_sweep_values").set_value("0.5, 1").run()
    at.button(key="exp_sweep_run").click().run()
    assert _spec(at, "exp_sweep")["sweep"] == {"param": "alpha", "values": (0.5, 1.0), "seeds": 3, "scenario": "few-labels"}
    at.text_input(key="exp_sweep_values").set_value("0.5, 2").run()
    at.button(key="exp_sweep_run").click().run()
    assert any("alpha" in e.value for e in at.error)
    at.text_input(key="exp_sweep_values").set_value("a, b").run()
    at.button(key="exp_sweep_run").click().run()
    assert any("comma-separated numbers" in e.value for e in at.error)


def test_sweep_result_shows_mean_std_chart_and_noise_verdicts(no_spawn, sweep_result):
    at = _page()
    at.button(key="exp_ex_accuracy-vs-temperature").click().run()
    handle = at.session_state["_kdviz_session_jobs"].handles["exp_sweep"]
    handle.result = sweep_result
    handle._finish("done", "finished")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "exp_sweep_res_chart")
    distilled = next(d for d in chart["data"] if d["name"].startswith("distilled"))
    assert distilled["y"] == [r["distilled"]["mean"] for r in sweep_result["rows"]]
    assert distilled["error_y"]["array"] == [r["distilled"]["std"] for r in sweep_result["rows"]]
    table = at.dataframe[-1].value  # the live result (the precomputed one comes first, in its expander)
    assert list(table["point"]) == ["T=1", "T=4"]
    assert set(table["gain vs noise"]) <= {"within noise", "beyond noise"}
    assert any("Fewer than 3 seeds" in w.value for w in at.warning)
