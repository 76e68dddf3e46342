"""Feature maps: where a CNN teacher and student "look" (attention maps per stage), and attention transfer live.

Attention map a(f) = normalize(vec(mean_c f_c²)) (Zagoruyko & Komodakis 2017), from ``kdviz.attention``.
Runs inside the app or alone: ``streamlit run app_pages/feature_maps.py``. The built-in pair trains
in a background job (``kdviz.runtime.feature_jobs.quick_pair_job``), and so does the short attention-transfer run
(``kdviz.runtime.feature_jobs.watch_at_job``), so the page stays responsive while they train.
"""
from __future__ import annotations

import random
from pathlib import Path

import streamlit as st
import torch

from kdviz.attention import compare_stages
from kdviz.checkpoints import CheckpointError
from kdviz.images import enlarge, to_pixels
from kdviz.figures import attention_comparison, heatmap_row, series_lines
from kdviz.ui.frame import current_device, data_source, get_bundle
from kdviz.ui import live
from kdviz.ui.hosted import cap
from kdviz.ui.jobs import get_job, show_start_error, start_job_or_keep_error
from kdviz.ui.teachers import current_teacher, load_model
from kdviz.ui.urlstate import sync_url, url_state

BUILTIN, YOURS = "A good CNN teacher and a student trained here", "Your teacher and a distilled student"
JOB = "feature_maps"  # this session's quick-pair job (kdviz.ui.jobs registry name)
WATCH_JOB = "feature_maps_watch"  # this session's "watch attention transfer" job
PROBE_SIZE = 128  # images over which the AT distance is averaged


# ----------------------------------------------------------------------------- models
def _load(path: str):
    """``(model, config)`` from the server-wide model cache (bounded in bytes; a rewritten file is read again)."""
    model, cfg, _ = load_model(path)
    return model, cfg


def your_models():
    """``(teacher, student, t_cfg, s_cfg, label, paths)`` from the session's checkpoints, or None after explaining why not."""
    t_path, _ = current_teacher()
    students = {k: v for k, v in (st.session_state.get("student_ckpts") or {}).items() if v and Path(v).is_file()}
    name = st.selectbox("Student", list(students), key="fm_student")
    try:
        teacher, t_cfg = _load(t_path)
        student, s_cfg = _load(students[name])
    except (CheckpointError, OSError, KeyError) as err:
        st.error(f"Could not load the checkpoints: {err}")
        return None
    label = f"teacher {t_cfg.label()} · student '{name}' {s_cfg.label()}"
    return teacher, student, t_cfg, s_cfg, label, {"teacher": t_path, "student": students[name]}


def cnn_teacher() -> tuple[str, str]:
    """``(checkpoint path, description)``: the session's teacher when it is a CNN, else "" (the shipped 99 % CNN)."""
    path, summary = current_teacher()
    if path and (summary or {}).get("model", {}).get("arch") == "cnn":
        return path, "the session's CNN teacher"
    return "", "the shipped CNN teacher (99 % test accuracy)"


def _start_pair() -> None:
    """Button callback: train the student (and, if asked, a small teacher) in a worker process (nothing blocks)."""
    s = st.session_state
    spec = {"fn": "kdviz.runtime.feature_jobs:quick_pair_job", "steps": int(s["fm_steps"]), "data": data_source(),
            "device": current_device(), "train_teacher": bool(s.get("fm_train_teacher", False))}
    if not spec["train_teacher"]:
        spec["teacher"] = cnn_teacher()[0]
    start_job_or_keep_error(JOB, spec)


def draw_pair_job(handle) -> None:
    """Live view of the quick-pair job (inside the polling fragment): status and a progress bar."""
    if not live.still_drawing(handle):
        return  # done: the fragment reruns the whole page, which then shows the maps
    steps = int(handle.spec.get("steps", 1))
    t, s = handle.step("teacher"), handle.step("student")
    if handle.spec.get("train_teacher"):
        st.progress(min(1.0, (t + s) / (2 * steps)), text=f"teacher step {t} / {steps} · student step {s} / {steps}")
    else:
        st.progress(min(1.0, s / steps), text=f"student step {s} / {steps}")
    run = "student" if "student" in handle.runs else "teacher"
    latest = handle.records(run)[-1:]
    if latest:
        st.caption(f"{run} training-batch accuracy: {latest[0]['train_acc']:.1%}")


def pair_from_result(result: dict):
    """``(teacher, student, t_cfg, s_cfg, label, paths)`` from the finished job's checkpoints, or None after an error."""
    try:
        paths = result["checkpoints"]
        teacher, t_cfg = _load(paths["teacher"])
        student, s_cfg = _load(paths["student"])
    except (CheckpointError, OSError, KeyError) as err:
        st.error(f"Could not load the trained pair ({err}); press the button to train it again.")
        return None
    if result.get("note"):
        st.warning(result["note"])
    acc = result.get("test_acc", {})
    trained = f"{result.get('steps')} steps each" if result.get("teacher_trained") else f"student {result.get('steps')} steps"
    label = (f"teacher {t_cfg.label()} ({acc.get('teacher', 0):.1%}) · student {s_cfg.label()} ({acc.get('student', 0):.1%}), "
             f"{trained}" + (", student trained with KD + AT on stage 2" if result.get("uses_at") else ""))
    return teacher, student, t_cfg, s_cfg, label, {"teacher": paths["teacher"], "student": paths["student"]}


def builtin_models():
    """A good CNN teacher and a student distilled from it in the background (a small teacher too, if asked)."""
    steps = st.number_input("Training steps", 20, cap("max_steps", 1000), step=20, key="fm_steps")
    own = st.checkbox("Also train a small teacher here (16-32-64, same steps: about 87 % after 300 steps)", key="fm_train_teacher",
                      help="Off: the student learns from a well-trained teacher, whose attention maps are worth copying.")
    teacher_note = "a small CNN teacher (16-32-64 channels)" if own else cnn_teacher()[1]
    handle = get_job(JOB)
    if handle is not None:
        handle.poll()  # a job that ended since the last run shows its maps at once
    active = handle is not None and handle.active
    c1, c2 = st.columns([3, 1])
    what = f"teacher and student ({int(steps)} + {int(steps)} steps)" if own else f"the student ({int(steps)} steps)"
    c1.button(f"Train {what}", key="fm_train", type="primary",
              on_click=_start_pair, width="stretch", help="Trains in the background; a run in progress is replaced.")
    c2.button("Stop", key="fm_stop", disabled=not active, on_click=live.stop_job, args=(JOB,), width="stretch")
    show_start_error(JOB)
    if handle is None:
        st.info(f"Press the button to train a CNN student (8-16-32) distilled from {teacher_note} with attention "
                "transfer on stage 2 — seconds on a CPU, in the background.")
        return None
    if handle.state != "done" or handle.result is None:
        live.live_panel(JOB, draw_pair_job)  # ticks while queued/running; shows the error or stop otherwise
        return None
    return pair_from_result(handle.result)


# ----------------------------------------------------------------------------- views
def _random_index(n: int) -> None:
    st.session_state["fm_index"] = random.randrange(n)


def pick_digit(test) -> torch.Tensor:
    c1, c2 = st.columns([3, 1])
    idx = c1.number_input("Test image #", 0, len(test) - 1, key="fm_index")
    c2.button("Random", key="fm_random", icon=":material/casino:", on_click=_random_index, args=(len(test),))
    idx = int(idx)
    return test.images(idx, idx + 1), int(test.y[idx])  # decodes one image, not the whole test set


def explain_mlp(err: ValueError) -> None:
    st.warning(f"**No attention maps for this pair.** {err}")
    st.markdown("Attention transfer compares *where* two networks respond: it needs feature maps with a spatial "
                "layout `[C, H, W]`. An MLP flattens the image at its input, so its hidden layers are plain vectors "
                "`[D]` with no H×W grid to look at. Choose the built-in CNN pair above, or train CNNs on the "
                "Teacher and Distill pages.")


def stage_maps(teacher, student, x) -> list[str]:
    """Teacher | student | difference for every stage both CNNs have; returns those stage names."""
    comparisons = compare_stages(teacher, student, x)
    for c in comparisons:
        h, w = c.teacher_map.shape
        stage = c.student_layer if c.student_layer == c.teacher_layer else f"{c.student_layer} vs {c.teacher_layer}"
        fig = attention_comparison(c.teacher_map, c.student_map, c.difference,
                                   title=f"{stage} ({h}×{w}) — AT distance {c.distance:.2e}")
        st.plotly_chart(fig, key=f"fm_chart_{c.student_layer}", theme=None)
    st.caption("Maps are unit-L2 normalised, so teacher and student share one colour scale even with different "
               "channel counts. Difference = student − teacher (red: the student attends more). AT distance = "
               "mean squared difference, the unweighted `kdviz.methods.at.at_loss` for this image.")
    return [c.student_layer for c in comparisons]


# ----------------------------------------------------------------------------- watch AT training
def _start_watch(paths: dict, labels: str) -> None:
    """Button callback: train a fresh student against the teacher in a worker process (nothing blocks)."""
    state = st.session_state
    start_job_or_keep_error(WATCH_JOB, {"fn": "kdviz.runtime.feature_jobs:watch_at_job", "teacher": paths["teacher"], "student": paths["student"],
                          "layer": state["fm_layer"], "steps": int(state["fm_watch_steps"]), "index": int(state.get("fm_index", 0)),
                          "probe_n": PROBE_SIZE, "data": data_source(), "device": current_device(), "ui": {"labels": labels}})


def draw_watch_job(handle) -> None:
    """Live view of the attention-transfer job (inside the polling fragment): status, progress, latest AT loss."""
    if not live.still_drawing(handle):
        return  # done: the fragment reruns the whole page, which then plots the result
    steps, step = int(handle.spec.get("steps", 1)), handle.step("student")
    st.progress(min(1.0, step / steps), text=f"student step {step} / {steps}")
    latest = handle.records("student")[-1:]
    if latest:
        at = latest[0].get("raw", {}).get("at")
        st.caption(f"training-batch accuracy {latest[0]['train_acc']:.1%}" + (f" · AT distance (batch) {at:.2e}" if at is not None else ""))


def show_watch(result: dict) -> None:
    """The snapshot maps and the AT distance curve from the finished job's (plain-list) result."""
    snaps = result["snapshots"]
    maps = {f"step {s['step']}<br>AT {s['distance']:.1e}": s["map"] for s in snaps}
    maps["teacher"] = result["teacher_map"]
    st.caption(f"Test image #{result['index']} (label {result['label']}), student {result['labels']['student']} "
               f"trained for {result['steps']} steps against teacher {result['labels']['teacher']}.")
    st.plotly_chart(heatmap_row(maps, shared_scale=True, height=260,
                                title=f"Student attention on {result['layer']}, moving toward the teacher's (right)"),
                    key="fm_watch_maps", theme=None)
    st.plotly_chart(series_lines({"AT distance to the teacher": ([s["step"] for s in snaps], [s["distance"] for s in snaps])},
                                 y_title="mean at_loss (probe images)", log_y=True, height=260), key="fm_watch_curve", theme=None)
    if result["note"]:
        st.warning(result["note"])


def watch_section(paths: dict, layers: list[str], labels: str) -> None:
    st.subheader("Watch attention transfer happen")
    st.caption("A fresh student with the same architecture as the one above is trained against the teacher "
               "(KD + β·AT, β = 1000), in the background. Snapshots are spaced geometrically because early "
               "training changes fastest.")
    c1, c2 = st.columns(2)
    default = layers.index("stage2") if "stage2" in layers else len(layers) - 1
    c1.selectbox("Stage to transfer", layers, index=default, key="fm_layer")
    steps = c2.number_input("Steps", 10, cap("max_steps", 1000), step=10, key="fm_watch_steps")
    handle = get_job(WATCH_JOB)
    if handle is not None:
        handle.poll()  # a job that ended since the last run shows its plots at once
    active = handle is not None and handle.active
    b1, b2 = st.columns([3, 1])
    b1.button(f"Run a short AT training ({int(steps)} steps)", key="fm_watch", on_click=_start_watch, args=(paths, labels),
              width="stretch", help="Trains in the background on the digit shown above; a run in progress is replaced.")
    b2.button("Stop", key="fm_watch_stop", disabled=not active, on_click=live.stop_job, args=(WATCH_JOB,), width="stretch")
    show_start_error(WATCH_JOB)
    if handle is None or (not active and handle.spec.get("ui", {}).get("labels") != labels):
        return  # nothing run yet, or a finished run for another pair
    if handle.state != "done" or handle.result is None:
        live.live_panel(WATCH_JOB, draw_watch_job)  # ticks while queued/running; shows the error or stop otherwise
        return
    show_watch(handle.result)


# ----------------------------------------------------------------------------- page
P = "fm_"  # URL-backed settings: ?steps=300&index=42&watch_steps=200 seed fm_steps, fm_index, fm_watch_steps


def url_schema(n_test: int) -> dict:
    max_steps = cap("max_steps", 1000)
    return {"steps": (int, min(300, max_steps), (20, max_steps)), "index": (int, 0, (0, n_test - 1)),
            "watch_steps": (int, min(200, max_steps), (10, max_steps))}


def main() -> None:
    st.title(":material/grid_view: Feature maps & attention transfer")
    st.caption("Attention map of a CNN stage: a(f) = normalize(vec(mean over channels of f²)) — where the stage "
               "responds strongly (Zagoruyko & Komodakis 2017). Attention transfer trains the student's maps to "
               "match the teacher's.")
    bundle = get_bundle(data_source())
    schema = url_schema(len(bundle.test))
    url_state(schema, P)  # a bad ?index=… shows a warning naming it, and the default is used
    body(bundle)
    sync_url(schema, P)


def body(bundle) -> None:
    has_yours = bool(current_teacher()[0]) and bool(st.session_state.get("student_ckpts"))
    source = st.radio("Models", [YOURS, BUILTIN] if has_yours else [BUILTIN], key="fm_source", horizontal=True)
    models = your_models() if source == YOURS else builtin_models()
    if models is None:
        return
    teacher, student, _, _, labels, paths = models
    st.caption(labels)
    x, label = pick_digit(bundle.test)
    left, right = st.columns([1, 4])
    left.image(enlarge(to_pixels(x), 4), caption=f"label {label}")
    try:
        with right:
            layers = stage_maps(teacher, student, x)
    except ValueError as err:
        explain_mlp(err)
        return
    st.divider()
    watch_section(paths, layers, labels)


main()
