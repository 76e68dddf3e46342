"""Teacher page under AppTest with synthetic data: widgets, validation, live training, adoption."""
from __future__ import annotations

import json
import time
from pathlib import Path

from apptools import rendered, step_of
from hostile_files import code_running_pickle, lying_accuracy_checkpoint, shared_storage_giant, tiny_checkpoint
from streamlit.testing.v1 import AppTest

from kdviz.checkpoints import load_checkpoint
from kdviz.models import ModelConfig
from kdviz.ui.teachers import DEFAULT_TEACHER

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "teacher.py")
TIMEOUT = 60


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


def _chart(at: AppTest, key: str) -> dict:
    """The Plotly figure (as JSON) of the chart with this key."""
    chart = next(c for c in at.get("plotly_chart") if c.key == key)
    return json.loads(chart.proto.spec)


def test_widgets_have_stable_keys(app_env):
    at = _page()
    assert at.radio(key="teacher_arch").value == "mlp"
    assert at.text_input(key="teacher_hidden").value == "1200, 1200"
    for key in ("teacher_optimizer", "teacher_schedule", "teacher_batch"):
        assert at.selectbox(key=key) is not None
    assert at.select_slider(key="teacher_lr").value == 1e-3
    assert {s.key for s in at.slider} >= {"teacher_dropout", "teacher_jitter"}
    assert {n.key for n in at.number_input} >= {"teacher_epochs", "teacher_seed"}
    buttons = {b.key: b for b in at.button}
    assert not buttons["teacher_start"].disabled
    assert all(buttons[f"teacher_{k}"].disabled for k in ("pause", "resume", "step", "stop", "reset"))
    if DEFAULT_TEACHER.is_file():
        assert "teacher_use_default" in buttons
    else:
        assert any("not in this installation" in c.value for c in at.caption)
    at.radio(key="teacher_arch").set_value("cnn").run()
    assert at.text_input(key="teacher_channels").value == "16, 32"
    assert at.radio(key="teacher_cnn_layout").value == "classic"


def test_a_preset_sets_the_widgets_to_its_recipe(app_env):
    at = _page()
    at.selectbox(key="teacher_preset").set_value("lean").run()
    assert not at.exception
    assert at.radio(key="teacher_arch").value == "cnn" and at.text_input(key="teacher_channels").value == "16, 16, 48"
    assert at.radio(key="teacher_cnn_layout").value == "lean" and at.number_input(key="teacher_epochs").value == 1.3
    assert at.select_slider(key="teacher_lr").value == 0.02 and at.selectbox(key="teacher_batch").value == 128
    assert (at.selectbox(key="teacher_optimizer").value, at.selectbox(key="teacher_schedule").value) == ("adam", "onecycle")
    at.selectbox(key="teacher_preset").set_value("mlp").run()
    assert at.radio(key="teacher_arch").value == "mlp" and at.text_input(key="teacher_hidden").value == "1200, 1200"
    assert at.slider(key="teacher_dropout").value == 0.2 and at.number_input(key="teacher_epochs").value == 3.0


def test_bad_widths_show_an_error_and_start_nothing(app_env):
    at = _page()
    at.text_input(key="teacher_hidden").input("800, lots").run()
    at.button(key="teacher_start").click().run()
    assert not at.exception
    assert "whole numbers" in at.error[0].value and "800, lots" in at.error[0].value
    assert step_of(at) == -1 and not at.get("plotly_chart")


def test_start_pause_step_resume_trains_live_and_adopts_the_teacher(app_env, tick):
    at = _page()
    at.text_input(key="teacher_hidden").input("32").run()
    at.selectbox(key="teacher_batch").set_value(32).run()  # 512 // 32 = 16 steps per epoch
    # 40 epochs (640 steps): long enough that Pause reaches the worker while it trains. With 2 epochs the
    # worker, no longer slowed by torch._dynamo's import (kdviz/optim.py), finished before Pause arrived.
    at.number_input(key="teacher_epochs").set_value(40.0).run()
    at.button(key="teacher_start").click().run()
    at.button(key="teacher_pause").click().run()
    assert not at.button(key="teacher_resume").disabled
    at.button(key="teacher_step").click().run()
    tick(at, lambda a: step_of(a) > 0)
    first = step_of(at)
    assert 0 < first < 640  # paused part-way (then one record more for the step)
    time.sleep(0.6)
    at.run()
    assert step_of(at) == first  # still paused: no record arrives
    at.button(key="teacher_resume").click().run()
    tick(at, lambda a: any(m.label == "Test accuracy" for m in a.metric))
    assert step_of(at) == 640 > first
    loss = _chart(at, "teacher_loss_chart")["data"][0]
    assert loss["name"] == "teacher" and loss["x"][-1] == 640 and len(loss["x"]) >= 3  # a live curve, not one point
    acc = _chart(at, "teacher_acc_chart")["data"][0]
    assert len(acc["x"]) >= 2
    ckpt = at.session_state["teacher_ckpt"]
    assert Path(ckpt).is_file() and at.session_state["teacher_summary"]["label"] == "MLP 784-32-10"
    assert any("Current teacher" in s.value for s in at.success)  # the page redrew after the run ended


def test_a_queued_run_shows_its_place_and_polls_slowly_until_it_starts(no_spawn, monkeypatch):
    """A run waiting for a slot shows "Queued — position 1" and is polled every 4 s, not 0.4 s;
    once the slot frees it runs and the live view goes back to twice a second."""
    monkeypatch.setattr(no_spawn, "max_jobs", 1)
    blocker = no_spawn.submit({"fn": "kdviz.runtime.worker:count_job", "n": 10**9}, owner="someone else")
    at = _page()
    at.button(key="teacher_start").click().run()
    assert any("Queued — position 1" in i.value for i in at.info)
    assert any("live view: every 4 s" in c.value for c in at.caption)
    blocker.stop()
    at.run()
    assert not any("Queued" in i.value for i in at.info)
    assert any("live view: every 0.4 s" in c.value for c in at.caption)


def test_uploaded_teacher_checkpoint_becomes_the_teacher(app_env):
    at, data = _page(), tiny_checkpoint()
    at.file_uploader(key="teacher_ckpt_upload").set_value(("mine.pt", data, "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert any("MLP 784-8-10" in s.value and "uploaded: mine.pt" in rendered(s.value) for s in at.success)
    path = Path(at.session_state["teacher_ckpt"])
    assert path.is_file() and path.read_bytes() == data


def test_hostile_and_broken_checkpoint_uploads_are_refused(app_env, tmp_path):
    target = tmp_path / "pwned.txt"
    cases = {
        "evil.pt": (code_running_pickle(target), "refused: it asks to load __builtin__.exec"),
        "truncated.pt": (tiny_checkpoint()[:200], "corrupt"),
        "text.pt": (b"not a checkpoint", "corrupt"),
        "other-arch.pt": (tiny_checkpoint(claims_hidden=(32,)), "do not fit MLP 784-32-10"),
    }
    at = _page()
    for name, (data, needle) in cases.items():
        at.file_uploader(key="teacher_ckpt_upload").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, name
        assert any("That checkpoint cannot be used" in e.value and needle in rendered(e.value) for e in at.error), (name, [e.value for e in at.error])
        assert "teacher_ckpt" not in at.session_state or not str(at.session_state["teacher_ckpt"]).endswith(name)
    assert not target.exists()  # the hostile pickle ran nothing
    assert any("No teacher yet" in i.value for i in at.info)  # the page keeps working, nothing was adopted


def test_an_uploaded_teachers_accuracy_is_measured_not_read_from_the_file(app_env):
    """The file claims 99.90 %; an untrained MLP scores about chance on the test set."""
    from kdviz.checkpoints import load_checkpoint
    from kdviz.evaluation import evaluate
    from kdviz.data import load_bundle

    data = lying_accuracy_checkpoint(0.999)
    expected = evaluate(load_checkpoint(data)[0], load_bundle("synthetic").test).accuracy  # independent measurement
    at = _page()
    at.file_uploader(key="teacher_ckpt_upload").set_value(("liar.pt", data, "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert at.session_state["teacher_summary"]["test_acc"] == expected < 0.5
    shown = " ".join(s.value for s in at.success)
    assert f"{100 * expected:.2f}% test accuracy" in shown and "99.90%" not in shown


def test_hosted_upload_above_the_caps_is_refused(app_env, monkeypatch):
    from kdviz.checkpoints import checkpoint_bytes
    from kdviz.models import ModelConfig, build_model
    from kdviz.ui.hosted import _server_limits

    monkeypatch.setenv("KDVIZ_HOSTED", "1")
    _server_limits.clear()  # hosted mode is read once per server
    try:
        wide = ModelConfig("mlp", hidden=(300,))
        at = _page()
        for name, data, needle in (("wide.pt", checkpoint_bytes(build_model(wide), wide), "MLP 784-300-10; this hosted playground accepts"),
                                   ("giant.pt", shared_storage_giant(), "this hosted playground accepts")):
            at.file_uploader(key="teacher_ckpt_upload").set_value((name, data, "application/octet-stream")).run()
            assert not at.exception
            assert any(needle in rendered(e.value) for e in at.error), (name, [e.value for e in at.error])
        assert "teacher_ckpt" not in at.session_state
    finally:
        _server_limits.clear()


def test_a_lean_cnn_teacher_trains_from_the_page(app_env, tick):
    at = _page()
    at.radio(key="teacher_arch").set_value("cnn").run()
    at.text_input(key="teacher_channels").input("8").run()
    at.radio(key="teacher_cnn_layout").set_value("lean").run()
    at.number_input(key="teacher_epochs").set_value(0.5).run()
    at.button(key="teacher_start").click().run()
    tick(at, lambda a: any(m.label == "Test accuracy" for m in a.metric))
    assert not at.exception and at.session_state["teacher_summary"]["label"] == "CNN 8 (lean)"
    _, cfg, _ = load_checkpoint(at.session_state["teacher_ckpt"])
    assert cfg == ModelConfig(arch="cnn", channels=(8,), cnn_layout="lean", dropout=0.2)  # the page's default dropout
