"""Teacher page: train the big network live (in a worker process), or use the shipped default."""
from __future__ import annotations

import streamlit as st

from kdviz.engine import TrainConfig, total_steps
from kdviz.experiments.recipes import TEACHER_PRESETS
from kdviz.hosted import clamp_model_config, clamp_train_config
from kdviz.models import ModelConfig
from kdviz import figures
from kdviz.ui import forms, live, teachers
from kdviz.ui.frame import current_device, data_source, get_bundle
from kdviz.ui.hosted import cap, limits, show_clamp_notes
from kdviz.ui.jobs import get_job, start_job
from kdviz.ui.text import md_text

JOB = "teacher"
DEFAULT_MODEL = ModelConfig(arch="mlp", hidden=(1200, 1200), dropout=0.2)
DEFAULT_TRAIN = TrainConfig(epochs=2, batch_size=128, lr=1e-3, optimizer="adam")


def start() -> None:
    """Start button callback: read the widgets, clamp in hosted mode, submit the job."""
    st.session_state.pop("teacher_error", None)
    try:
        model, notes_m = clamp_model_config(forms.model_from_state(JOB), limits())
        n_train = len(get_bundle(data_source()).train)
        train, notes_t = clamp_train_config(forms.train_from_state(JOB), limits(), n_train=n_train)
        spec = {"fn": "kdviz.runtime.training_jobs:teacher_job", "model": forms.spec_dict(model), "train": forms.spec_dict(train),
                "data": data_source(), "device": current_device(), "ui": {"total_steps": total_steps(n_train, train)}}
        start_job(JOB, spec)
    except ValueError as err:
        st.session_state["teacher_error"] = str(err)
        return
    st.session_state["teacher_notes"] = notes_m + notes_t
    st.session_state["teacher_adopted"] = None


def apply_preset() -> None:
    """Selectbox callback: the chosen teacher preset's values into the widgets (before they are drawn)."""
    preset = TEACHER_PRESETS.get(st.session_state.get("teacher_preset") or "")
    if preset is not None:
        for key, value in forms.widget_values(preset.model, preset.train).items():
            st.session_state[f"{JOB}_{key}"] = value


def preset_picker() -> None:
    st.selectbox("Preset", [""] + list(TEACHER_PRESETS), key="teacher_preset", on_change=apply_preset,
                 format_func=lambda k: f"{k}: {TEACHER_PRESETS[k].description}" if k else "(your own settings)",
                 help="Sets the widgets below to a teacher recipe of `python -m kdviz teacher --preset …`. "
                      "lean: the quickest ≥ 99 % teacher (bench/teacher.py); fast: the shipped default teacher's recipe. "
                      "Precision is not a widget: the page trains in float32.")


def adopt(handle) -> None:
    """A finished teacher becomes the session's teacher once (the user can switch back to the default)."""
    result = handle.result
    if result and st.session_state.get("teacher_adopted") != handle.id:
        st.session_state["teacher_adopted"] = handle.id
        teachers.use_teacher(result["checkpoint"], {k: result[k] for k in ("label", "test_acc", "params", "size_mb", "data_source", "model")},
                             "trained here")


def draw(handle) -> None:
    if handle is None:
        st.caption("Press **Start** to train a teacher; its loss and test accuracy appear here live.")
        return
    live.status_line(handle)
    live.progress(handle, handle.spec.get("ui", {}).get("total_steps"))
    c1, c2 = st.columns(2)
    c1.plotly_chart(live.figure("teacher_loss", handle, lambda: figures.metric_curves({"teacher": handle.records("teacher")})),
                    key="teacher_loss_chart", theme=None)
    c2.plotly_chart(live.figure("teacher_acc", handle, lambda: figures.accuracy_curves(
        {"teacher": handle.evals("teacher")}, title="Test accuracy (live: a fixed sample of ≤2,000 test images)")),
        key="teacher_acc_chart", theme=None)
    if handle.result:
        adopt(handle)
        result_summary(handle.result)


def result_summary(result: dict) -> None:
    c = st.columns(5)
    c[0].metric("Test accuracy", f"{100 * result['test_acc']:.2f}%", help="On the full test set.")
    c[1].metric("Test errors", f"{result['errors']:,}")
    c[2].metric("Parameters", f"{result['params']:,}")
    c[3].metric("Size", f"{result['size_mb']:.2f} MB")
    c[4].metric("Forward pass, 256 images", f"{result['ms_per_batch']:.1f} ms", help=f"Measured in the worker ({result.get('threads', 1)} thread(s)).")
    st.caption(f"Trained in {result['train_s']:.1f} s on {result['data_name']}. Saved to `{result['checkpoint']}` — "
               "this is now the teacher the Distill page uses.")


st.title("Teacher")
st.markdown("Train the big network that the student will learn from. Training runs in a separate worker "
            "process, so the page stays responsive: pause, step or stop at any time, switch pages and come back.")
teachers.teacher_box(JOB)
teachers.teacher_upload(JOB)

with st.expander("Architecture and training settings", expanded=get_job(JOB) is None):
    preset_picker()
    left, right = st.columns(2)
    with left:
        forms.model_inputs(JOB, DEFAULT_MODEL)
    with right:
        forms.train_inputs(JOB, DEFAULT_TRAIN, max_epochs=cap("max_epochs", 50.0))

live.controls(JOB, on_start=start)
if st.session_state.get("teacher_error"):
    st.error(md_text(st.session_state["teacher_error"]))  # may quote what was typed
show_clamp_notes(st.session_state.get("teacher_notes", []))
live.live_panel(JOB, draw)
