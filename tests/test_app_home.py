"""Home page under AppTest with synthetic data: the picture, the one-click demo, the live bias slider."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from kdviz.experiments import scenarios as sc
from kdviz.experiments.scenario_specs import CLASSROOM_DEMO
from kdviz.experiments.results import bias_accuracy
from kdviz.figures import kd_diagram

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "home.py")
TINY = {"student_hidden": [16], "teacher_hidden": [32], "teacher_epochs": 2, "epochs": 4, "scratch_epochs": 4,
        "batch_size": 32, "lr": 1e-2, "log_every": 5}


@pytest.fixture(scope="module")
def demo_result(tmp_path_factory) -> dict:
    """A real omitted-digit result (tiny networks, synthetic digits), computed in-process."""
    torch.set_num_threads(1)
    events = list(sc.omitted_digit_job({"data": "synthetic", "overrides": TINY, "cache_dir": str(tmp_path_factory.mktemp("t"))}))
    assert events[-1]["type"] == "result", events[-1]
    return events[-1]


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _handle(at: AppTest):
    return at.session_state["_kdviz_session_jobs"].handles["home_demo"]


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_explains_kd_and_says_what_data_and_device(app_env):
    at = _page()
    assert "dark knowledge" in at.markdown[0].value
    assert not at.get("plotly_chart")  # the diagram is a static image: a fresh page loads no Plotly script
    assert "Soft targets" in kd_diagram() and kd_diagram().startswith("<svg")
    assert any("synthetic test digits" in i.value and "device:** cpu" in i.value for i in at.info)
    assert any("MLP 784-1200-1200-10 with dropout" in c.value and "trained first" in c.value for c in at.caption)


def test_one_click_starts_the_omitted_digit_scenario(no_spawn):
    at = _page()
    at.button(key="home_demo_start").click().run()
    spec = _handle(at).spec
    assert spec["fn"] == "kdviz.experiments.scenarios:omitted_digit_job"
    assert spec["overrides"] == {**CLASSROOM_DEMO, "omit": 3, "seeds": 1}
    assert spec["data"] == "synthetic" and spec["device"] == "cpu"
    cfg = sc.with_overrides(sc.preset(spec["preset"]), spec["overrides"])  # what the worker will train
    assert cfg.student.model.hidden == (300,) and cfg.student.epochs == 1.0 and cfg.omit == 3
    assert any("MLP 784-300-10, trained for 1 epoch at T = 20" in c.value for c in at.caption)
    assert spec["teacher_ckpt"] == "" and spec["cache_dir"]


def test_bias_slider_recomputes_accuracy_from_stored_logits(no_spawn, demo_result):
    at = _page()
    at.button(key="home_demo_start").click().run()
    handle = _handle(at)
    handle.result = demo_result
    handle._finish("done", "finished")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    bars = charts["home_per_class"]
    assert [d["name"] for d in bars["data"]] == ["teacher", "distilled", "scratch"]
    scratch = next(d for d in bars["data"] if d["name"] == "scratch")
    assert scratch["y"][3] == 0.0  # the scratch student never saw a 3
    assert list(at.dataframe[0].value["network"])[1:] == ["distilled student", "scratch student"]
    logits = torch.tensor(demo_result["logits"]["distilled"])
    for bias in (0.0, 2.5):
        at.slider(key="home_bias").set_value(bias).run()
        _, on_digit = bias_accuracy(logits, demo_result["labels"], 3, bias)  # independent of the page
        assert _metric(at, "Distilled: digit 3") == f"{100 * on_digit:.1f}%"
    best = demo_result["runs"]["distilled"][0]["best_bias"]
    at.button(key="home_best_bias").click().run()
    assert at.slider(key="home_bias").value == best


def test_demo_runs_end_to_end_in_a_worker(app_env, tick):
    """The real thing: a worker process trains the teacher and both students of the default preset."""
    at = _page()
    at.button(key="home_demo_start").click().run()
    tick(at, lambda a: any(m.label == "Distilled: digit 3" for m in a.metric), timeout=150)
    result = _handle(at).result
    assert result["scenario"] == "omitted-digit" and result["data"]["source"] == "synthetic"
    assert result["transfer"]["class_counts"][3] == 0
    assert {"home_per_class", "home_bias_chart"} <= {c.key for c in at.get("plotly_chart")}
