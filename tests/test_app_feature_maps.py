"""Feature maps page (pages/feature_maps.py) run alone through Streamlit's AppTest on synthetic data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from kdviz.checkpoints import save_checkpoint
from kdviz.engine import make_model
from kdviz.models import ModelConfig

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "feature_maps.py"


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("KDVIZ_DATA_SOURCE", "synthetic")
    monkeypatch.setenv("KDVIZ_DEVICE", "cpu")
    monkeypatch.delenv("KDVIZ_HOSTED", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def charts(at) -> list:
    return list(at.get("plotly_chart"))


def test_renders_and_trains_the_builtin_pair(env):
    at = AppTest.from_file(str(PAGE), default_timeout=90).run()
    assert not at.exception, at.exception
    assert at.button(key="fm_train") is not None and at.number_input(key="fm_steps").value == 300
    assert "Press the button" in at.info[0].value and not charts(at)
    at.number_input(key="fm_steps").set_value(20)
    at.button(key="fm_train").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert len(charts(at)) == 3  # stage1, stage2, stage3: teacher | student | difference each
    assert at.number_input(key="fm_index") is not None and at.selectbox(key="fm_layer").value == "stage2"
    at.number_input(key="fm_index").set_value(5).run()
    assert not at.exception and len(charts(at)) == 3
    at.number_input(key="fm_watch_steps").set_value(20)
    at.button(key="fm_watch").click().run()
    assert not at.exception, at.exception
    assert len(charts(at)) == 5  # + snapshot row + distance curve
    result = at.session_state["fm_watch_result"]
    assert [s.step for s in result["snaps"]][0] == 0 and result["snaps"][-1].step == 20


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


@pytest.mark.skipif(not (ROOT / "app.py").is_file(), reason="app.py (the navigation frame) is not installed")
def test_inside_the_app(env, monkeypatch, tmp_path):
    monkeypatch.setenv("KDVIZ_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/feature_maps.py").run()
    assert not at.exception, at.exception
    assert at.button(key="fm_train") is not None
