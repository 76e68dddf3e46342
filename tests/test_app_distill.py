"""Distill page under AppTest with synthetic data: teacher handling, settings, method hook, live run."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from apptools import step_of
from streamlit.testing.v1 import AppTest

from kdviz.runtime.training_jobs import teacher_job

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "distill.py")
TIMEOUT = 60


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> dict:
    """A tiny teacher trained in-process on the synthetic digits: its result event."""
    out = tmp_path_factory.mktemp("teacher")
    events = list(teacher_job({"data": "synthetic", "out_dir": str(out), "model": {"hidden": [32]}, "train": {"epochs": 2}}))
    return events[-1]


def _page(teacher: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    if teacher is not None:
        at.session_state["teacher_ckpt"] = teacher["checkpoint"]
        at.session_state["teacher_summary"] = {**{k: teacher[k] for k in ("label", "test_acc", "params", "size_mb", "data_source", "model")},
                                               "source": "trained here"}
    at.run()
    assert not at.exception
    return at


def _spec(at: AppTest) -> dict:
    return at.session_state["_kdviz_session_jobs"].handles["distill"].spec


def test_without_a_teacher_it_says_so(app_env):
    at = _page()
    assert any("needs a teacher" in w.value for w in at.warning)
    at.button(key="distill_start").click().run()
    assert "no teacher yet" in at.error[0].value and step_of(at) == -1


def test_settings_and_alpha_convention(no_spawn, teacher):
    at = _page(teacher)
    assert "MLP 784-32-10" in at.success[0].value
    t, alpha = at.slider(key="distill_T"), at.slider(key="distill_alpha")
    assert (t.min, t.max, t.value) == (0.5, 50.0, 4.0) and (alpha.min, alpha.max, alpha.value) == (0.0, 1.0, 0.9)
    assert any("alpha weights the distillation term" in c.value and "opposite convention" in c.value for c in at.caption)
    assert any(r"\alpha\,T^2" in latex.value for latex in at.latex)  # the KD formula
    at.selectbox(key="distill_transfer").set_value("subset").run()
    at.number_input(key="distill_transfer_n").set_value(200).run()
    at.number_input(key="distill_epochs").set_value(0.5).run()
    at.button(key="distill_start").click().run()
    spec = _spec(at)
    assert spec["transfer"] == "subset:200"
    assert spec["distill"] == {"T": 4.0, "alpha": 0.9, "T_schedule": "constant", "alpha_schedule": "constant"}
    assert spec["ui"]["total_steps"] == 1 and spec["teacher"] == teacher["checkpoint"]  # 0.5 × (200 // 128)
    at.selectbox(key="distill_transfer").set_value("without").run()
    assert at.multiselect(key="distill_omit").value == ["3"]


def test_method_hook_sends_terms_with_layer_pairing(no_spawn, teacher):
    at = _page(teacher)
    at.multiselect(key="distill_methods").select("fitnet").select("dkd").run()
    assert not at.exception
    assert at.selectbox(key="distill_sl_fitnet").options == ["hidden1"]  # the student's MLP layers
    assert at.selectbox(key="distill_tl_fitnet").options == ["hidden1"]
    assert sum("Romero" in e.label or "Zhao" in e.label for e in at.expander) == 2
    at.number_input(key="distill_w_fitnet").set_value(2.5).run()
    at.button(key="distill_start").click().run()
    assert _spec(at)["terms"] == [
        {"method": "fitnet", "weight": 2.5, "student_layer": "hidden1", "teacher_layer": "hidden1"},
        {"method": "dkd", "weight": 1.0, "student_layer": "", "teacher_layer": ""},
    ]


def test_distilled_and_scratch_train_side_by_side_live(app_env, teacher, tick):
    at = _page(teacher)
    at.text_input(key="distill_hidden").input("16").run()
    at.selectbox(key="distill_transfer").set_value("full").run()
    at.selectbox(key="distill_batch").set_value(64).run()  # 512 // 64 = 8 steps per epoch
    at.number_input(key="distill_epochs").set_value(3.0).run()
    at.button(key="distill_start").click().run()
    tick(at, lambda a: any(m.label == "Distilled student" for m in a.metric))
    assert step_of(at) == 24
    handle = at.session_state["_kdviz_session_jobs"].handles["distill"]
    assert [r["step"] for r in handle.records("distilled")] == [r["step"] for r in handle.records("scratch")]
    charts = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    acc = charts["distill_acc_chart"]
    assert {d["name"] for d in acc["data"]} == {"distilled", "scratch"}
    assert any("teacher" in a.get("text", "") for a in acc["layout"].get("annotations", []))  # the teacher's line
    breakdown = [d["name"] for d in charts["distill_breakdown_chart"]["data"]]
    assert breakdown == ["α·KD  (α·T²·KL)", "(1−α)·CE", "total"]
    assert {"distill_conf_distilled", "distill_conf_scratch", "distill_conf_teacher", "distill_per_class_chart"} <= set(charts)
    rel = handle.result["reliability"]  # calibration of the three networks, from the job's test logits
    assert set(rel) == {"teacher", "distilled", "scratch"} and all(0 <= r["ece"] <= 1 and len(r["count"]) == 15 for r in rel.values())
    assert {m.label for m in at.metric} >= {"ECE: teacher", "ECE: distilled", "ECE: scratch"}
    names = [d["name"] for d in charts["distill_reliability_chart"]["data"]]
    assert names[0] == "perfect calibration" and names[1] == f"teacher (ECE {100 * rel['teacher']['ece']:.2f}%)"
    table = at.dataframe[0].value
    assert list(table["network"]) == ["Teacher", "Student (distilled)", "Student (scratch)"]
    assert table["parameters"].tolist() == [teacher["params"], 784 * 16 + 16 + 170, 784 * 16 + 16 + 170]
    assert (table["ms per 256-image batch"] > 0).all()
    verdicts = [i.value for i in at.info if "noise unknown" in i.value]  # one seed: the page says what it cannot tell
    acc_r = handle.result["test_acc"]
    assert verdicts and f"{100 * (acc_r['distilled'] - acc_r['scratch']):+.2f} points" in verdicts[0] and "Experiments" in verdicts[0]
    at.toggle(key="distill_raw_kl").set_value(True).run()
    raw = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "distill_breakdown_chart")
    assert [d["name"] for d in raw["data"]] == ["KL(teacher‖student) at T, no T²", "CE with true labels"]
    # the same settings with the next seed: the page now gives mean ± std over both seeds and the 2·SE verdict
    first = acc_r
    at.button(key="distill_next_seed").click().run()
    tick(at, lambda a: a.session_state["_kdviz_session_jobs"].handles["distill"].result is not None
         and any("Over **2 seeds**" in i.value for i in a.info))
    second = at.session_state["_kdviz_session_jobs"].handles["distill"]
    assert second.spec["train"]["seed"] == 1 and second.spec["student"] == handle.spec["student"]
    d, s = [first["distilled"], second.result["test_acc"]["distilled"]], [first["scratch"], second.result["test_acc"]["scratch"]]
    diff = 100 * (sum(d) / 2 - sum(s) / 2)
    se = 100 * math.sqrt(statistics.variance(d) / 2 + statistics.variance(s) / 2)  # hand 2·SE rule, ddof = 1
    text = next(i.value for i in at.info if "Over **2 seeds**" in i.value)
    assert "seeds 0, 1" in text and f"{diff:+.2f} points (2·SE {2 * se:.2f})" in text
    assert ("within noise" if abs(diff) < 2 * se or diff == 0 else "beyond noise") in text


def test_progressive_schedules_are_sent_and_previewed(no_spawn, teacher):
    at = _page(teacher)
    assert not [c for c in at.get("plotly_chart") if c.key == "distill_schedule_preview"]  # constant: no preview
    at.selectbox(key="distill_T_schedule").set_value("cosine").run()
    at.selectbox(key="distill_alpha_schedule").set_value("linear").run()
    at.slider(key="distill_T_end").set_value(1.0).run()
    at.slider(key="distill_alpha_end").set_value(0.5).run()
    preview = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "distill_schedule_preview")
    T, alpha = preview["data"][0]["y"], preview["data"][1]["y"]
    assert (T[0], T[-1], alpha[0], alpha[-1]) == (4.0, 1.0, 0.9, 0.5)
    assert T[len(T) // 2] == pytest.approx(2.5)  # cosine: halfway at the middle
    at.button(key="distill_start").click().run()
    assert _spec(at)["distill"] == {"T": 4.0, "alpha": 0.9, "T_schedule": "cosine", "T_end": 1.0,
                                    "alpha_schedule": "linear", "alpha_end": 0.5}


def test_divergences_are_offered_with_their_note(no_spawn, teacher):
    at = _page(teacher)
    assert {"Reverse KL", "Jensen–Shannon", "MSE on logits"} <= set(at.multiselect(key="distill_methods").options)
    at.multiselect(key="distill_methods").select("js").run()
    assert not at.exception and any("alpha·weight·JS" in c.value for c in at.caption)


def test_js_mixing_weight_is_sent_and_a_bad_one_starts_nothing(no_spawn, teacher):
    at = _page(teacher)
    at.multiselect(key="distill_methods").select("js").run()
    assert at.number_input(key="distill_p_js").value == 0.5
    at.number_input(key="distill_p_js").set_value(1.5).run()
    before = at.session_state["_kdviz_session_jobs"].handles.get("distill")  # tests in this file share one session
    at.button(key="distill_start").click().run()
    assert not at.exception and any("beta must lie strictly between 0 and 1" in e.value for e in at.error)
    assert at.session_state["_kdviz_session_jobs"].handles.get("distill") is before  # nothing started
    at.number_input(key="distill_p_js").set_value(0.2).run()
    at.button(key="distill_start").click().run()
    assert _spec(at)["terms"] == [{"method": "js", "weight": 1.0, "student_layer": "", "teacher_layer": "", "param": 0.2}]


def _logit_or_vector_methods() -> list[str]:
    from kdviz.methods import METHODS

    return [name for name, m in METHODS.items() if name != "kd" and m.needs != "maps"]  # maps: a CNN pair, in the browser test


@pytest.mark.parametrize("method", _logit_or_vector_methods())
def test_each_extra_term_trains_and_draws_its_curve(app_env, teacher, tick, method):
    """Every term the page offers (beside soft-target KD) trains in a worker and gets its own line in
    the loss breakdown; the browser test drives a few of them through Chromium."""
    at = _page(teacher)
    at.text_input(key="distill_hidden").input("16").run()
    at.selectbox(key="distill_transfer").set_value("full").run()
    at.selectbox(key="distill_batch").set_value(64).run()  # 512 // 64 = 8 steps per epoch
    at.number_input(key="distill_epochs").set_value(3.0).run()
    at.multiselect(key="distill_methods").select(method).run()
    at.button(key="distill_start").click().run()
    handle = at.session_state["_kdviz_session_jobs"].handles["distill"]
    tick(at, lambda a: handle.state in ("done", "error", "stopped"))
    assert handle.state == "done", [e.value for e in at.error]
    at.run()
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "distill_breakdown_chart")
    points = {d["name"]: len(d.get("x") or []) for d in chart["data"]}
    assert points.get(method, 0) >= 2 and "total" in points, points
    assert method in handle.records("distilled")[-1]["losses"]  # a weighted term of the distilled student
