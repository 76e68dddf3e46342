"""Feature maps page (app_pages/feature_maps.py) run alone through Streamlit's AppTest on synthetic data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from kdviz.checkpoints import save_checkpoint
from kdviz.engine import make_model
from kdviz.experiments.recipes import DEFAULT_TEACHER
from kdviz.models import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "feature_maps.py"


@pytest.fixture
def env(app_env):
    """Synthetic data, job folders under tmp_path (``app_env``), one torch thread (the cores are shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield app_env
    torch.set_num_threads(threads)


def charts(at) -> list:
    return list(at.get("plotly_chart"))


def test_renders_and_trains_the_builtin_pair_in_a_job(env, tick):
    at = AppTest.from_file(str(PAGE), default_timeout=90).run()
    assert not at.exception, at.exception
    assert at.button(key="fm_train") is not None and at.number_input(key="fm_steps").value == 300
    assert at.button(key="fm_stop").disabled
    assert "Press the button" in at.info[0].value and not charts(at)
    at.number_input(key="fm_steps").set_value(20)
    at.button(key="fm_train").click().run()  # returns at once: the pair trains in a worker process
    assert not at.exception and not at.error, (at.exception, at.error)
    handle = get_job_of(at)
    assert handle.spec["fn"] == "kdviz.runtime.feature_jobs:quick_pair_job" and handle.spec["steps"] == 20
    assert not charts(at) and not at.button(key="fm_stop").disabled  # training: no maps yet, Stop enabled
    tick(at, lambda a: len(charts(a)) == 3, timeout=120)  # the live fragment polls until the job is done
    assert not at.error, [e.value for e in at.error]
    assert any("teacher CNN 16-32-64" in c.value and "student 20 steps" in c.value for c in at.caption)
    assert set(handle.result["checkpoints"]) == {"teacher", "student"}  # the maps use the job's checkpoints
    assert handle.result["checkpoints"]["teacher"] == str(DEFAULT_TEACHER) and not handle.result["teacher_trained"]
    assert not handle.runs.get("teacher") and str(env) in handle.result["checkpoints"]["student"]  # only the student trained
    assert at.number_input(key="fm_index") is not None and at.selectbox(key="fm_layer").value == "stage2"
    at.number_input(key="fm_index").set_value(5).run()
    assert not at.exception and len(charts(at)) == 3
    assert at.button(key="fm_watch_stop").disabled
    at.number_input(key="fm_watch_steps").set_value(20)
    at.button(key="fm_watch").click().run()  # returns at once: the student trains in a worker process
    assert not at.exception and not at.error, (at.exception, at.error)
    watch = get_job_of(at, "feature_maps_watch")
    assert watch.spec["fn"] == "kdviz.runtime.feature_jobs:watch_at_job" and watch.spec["steps"] == 20 and watch.spec["layer"] == "stage2"
    assert watch.spec["index"] == 5 and watch.spec["teacher"] == handle.result["checkpoints"]["teacher"]
    assert watch.spec["student"] == handle.result["checkpoints"]["student"]
    tick(at, lambda a: len(charts(a)) == 5, timeout=120)  # + snapshot row + distance curve, from the job's result
    assert not at.error and at.button(key="fm_watch_stop").disabled, [e.value for e in at.error]
    assert watch.state == "done" and watch.step("student") == 20  # progress records arrived along the way
    steps = [s["step"] for s in watch.result["snapshots"]]
    assert steps[0] == 0 and steps[-1] == 20 and steps == sorted(steps)
    assert any("Test image #5" in c.value for c in at.caption)
    at.number_input(key="fm_index").set_value(7).run()  # the plots stay (they name the image they are for)
    assert not at.exception and len(charts(at)) == 5


def get_job_of(at, name: str = "feature_maps"):
    """The page's job handle ``name`` (quick pair, or "feature_maps_watch"), from the session's job registry."""
    from kdviz.ui.jobs import _STATE_KEY

    return at.session_state[_STATE_KEY].handles[name]


def test_stopping_the_quick_pair_shows_no_maps(env, no_spawn):
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.button(key="fm_train").click().run()
    assert get_job_of(at).state == "running" and not charts(at)
    at.button(key="fm_stop").click().run()
    assert not at.exception
    assert any("Stopped" in w.value for w in at.warning) and not charts(at)
    assert at.button(key="fm_stop").disabled


def test_mlp_pair_is_explained(env, tmp_path):
    paths = {}
    for name, cfg in (("teacher", ModelConfig("mlp", hidden=(32,))), ("student", ModelConfig("mlp", hidden=(8,)))):
        paths[name] = str(save_checkpoint(tmp_path / f"{name}.pt", make_model(cfg), cfg))
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["teacher_ckpt"] = paths["teacher"]
    at.session_state["student_ckpts"] = {"tiny MLP": paths["student"]}
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="fm_source").value.startswith("Your teacher")
    assert at.selectbox(key="fm_student").value == "tiny MLP"
    assert "No attention maps for this pair" in at.warning[0].value
    assert "hidden1" in at.warning[0].value  # the core's message names the layer and its shape
    assert not charts(at)


def test_your_cnn_pair_from_checkpoints(env, tmp_path):
    t_cfg, s_cfg = ModelConfig("cnn", channels=(4, 8, 8)), ModelConfig("cnn", channels=(4, 4))
    t_path = save_checkpoint(tmp_path / "t.pt", make_model(t_cfg), t_cfg)
    s_path = save_checkpoint(tmp_path / "s.pt", make_model(s_cfg, seed=1), s_cfg)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["teacher_ckpt"] = str(t_path)
    at.session_state["student_ckpts"] = {"s": str(s_path)}
    at.run()
    assert not at.exception and not at.warning, (at.exception, at.warning)
    assert len(charts(at)) == 2  # the stages both have
    assert at.selectbox(key="fm_layer").options == ["stage1", "stage2"]


def test_watch_runs_in_a_job_for_your_pair_and_can_be_stopped(env, tmp_path, no_spawn):
    t_cfg, s_cfg = ModelConfig("cnn", channels=(4, 8, 8)), ModelConfig("cnn", channels=(4, 4))
    t_path = save_checkpoint(tmp_path / "t.pt", make_model(t_cfg), t_cfg)
    s_path = save_checkpoint(tmp_path / "s.pt", make_model(s_cfg, seed=1), s_cfg)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.session_state["teacher_ckpt"] = str(t_path)
    at.session_state["student_ckpts"] = {"s": str(s_path)}
    at.run()
    at.selectbox(key="fm_layer").set_value("stage1")
    at.button(key="fm_watch").click().run()
    assert not at.exception, at.exception
    watch = get_job_of(at, "feature_maps_watch")
    assert watch.state == "running" and watch.spec["layer"] == "stage1" and watch.spec["steps"] == 200
    assert (watch.spec["teacher"], watch.spec["student"]) == (str(t_path), str(s_path))
    assert len(charts(at)) == 2 and not at.button(key="fm_watch_stop").disabled  # the page stays usable
    assert any("running" in c.value for c in at.caption)  # the live panel's status line
    at.button(key="fm_watch_stop").click().run()
    assert not at.exception
    assert any("Stopped" in w.value for w in at.warning) and len(charts(at)) == 2
    assert at.button(key="fm_watch_stop").disabled


def test_inside_the_app(env):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/feature_maps.py").run()
    assert not at.exception, at.exception
    assert at.button(key="fm_train") is not None


def test_quick_pair_job_trains_a_small_teacher_only_when_asked(tmp_path):
    from kdviz.runtime.feature_jobs import quick_pair_job

    base = {"steps": 3, "data": "synthetic", "device": "cpu"}
    given = [e for e in quick_pair_job({**base, "out_dir": str(tmp_path / "a")})]
    result = given[-1]
    assert result["type"] == "result" and not result["teacher_trained"], given[-1]
    assert not any(e.get("run") == "teacher" for e in given if e["type"] == "record")
    assert result["checkpoints"]["teacher"] == str(DEFAULT_TEACHER)
    own = [e for e in quick_pair_job({**base, "out_dir": str(tmp_path / "b"), "train_teacher": True})]
    assert own[-1]["teacher_trained"] and str(tmp_path / "b") in own[-1]["checkpoints"]["teacher"]
    mlp = save_checkpoint(tmp_path / "mlp.pt", make_model(ModelConfig("mlp", hidden=(8,)), 0), ModelConfig("mlp", hidden=(8,)))
    bad = [e for e in quick_pair_job({**base, "out_dir": str(tmp_path / "c"), "teacher": str(mlp)})]
    assert bad[-1]["type"] == "error" and "CNN teacher" in bad[-1]["text"], bad[-1]
