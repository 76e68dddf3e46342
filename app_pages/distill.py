"""Distill page: a distilled and a scratch student trained side by side, live, from the same start."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from kdviz.data import parse_transfer
from kdviz.engine import TrainConfig, total_steps
from kdviz.hosted import clamp_model_config, clamp_train_config
from kdviz.methods import METHODS, DistillConfig, default_layer
from kdviz.methods.schedules import SCHEDULES, schedule_curve
from kdviz.experiments.scenario_specs import teacher_cache_dir
from kdviz.runtime.job_specs import parse_terms
from kdviz.models import CNN_LAYOUTS, ModelConfig, build_model, feature_shapes
from kdviz import figures
from kdviz.ui import forms, live, seeds, teachers
from kdviz.ui.frame import current_device, data_source, get_bundle
from kdviz.ui.hosted import cap, limits, show_clamp_notes
from kdviz.ui.jobs import get_job, jobs_root, start_job
from kdviz.ui.text import md_text
from kdviz.ui.urlstate import sync_url, url_state

JOB = "distill"
P = JOB + "_"  # session-state prefix of the widgets; the URL-backed ones are listed in url_schema()
DEFAULT_STUDENT = ModelConfig(arch="mlp", hidden=(16,), dropout=0.0)  # 12.7k parameters: half the shipped teacher's
DEFAULT_TRAIN = TrainConfig(epochs=2, batch_size=128, lr=1e-3, optimizer="adam")
DEFAULT_TRANSFER, DEFAULT_TRANSFER_N = "labelled", 1000
TRANSFER_KINDS = {"full": "All training images", "subset": "A random subset of N images",
                  "without": "All images except some digits", "labelled": "All images, only N of them labelled"}
EXTRA_METHODS = [m for m in METHODS if m != "kd"]  # soft-target KD is always on (alpha can switch it off)


# ----------------------------------------------------------------------------- shareable settings and presets
DIGITS = [str(d) for d in range(10)]
HIDDEN_RE, CHANNELS_RE = r"[0-9]{1,5}( *, *[0-9]{1,5}){0,3}", r"[0-9]{1,4}( *, *[0-9]{1,4}){0,2}"
# Measured with `python bench/distill_presets.py` (this page's own job, distill_job: the shipped CNN 16-32-64 teacher,
# 24,058 parameters; seeds 0-2, real MNIST); student MLP 784-16-10 (12,730 parameters), T = 4, alpha = 0.9.
PRESETS = {
    "helps": ("Where KD helps: 1,000 labels, the teacher labels the other 59,000 images",
              {"arch": "mlp", "hidden": "16", "transfer": "labelled", "transfer_n": 1000, "epochs": 2.0, "T": 4.0, "alpha": 0.9},
              "distilled 91.61 ± 0.52 % vs scratch 84.81 ± 0.18 % (+6.80 points, beyond noise)"),
    "no_gain": ("Where it does not: 2,000 labelled images, no others, 10 epochs",
                {"arch": "mlp", "hidden": "16", "transfer": "subset", "transfer_n": 2000, "epochs": 10.0, "T": 4.0, "alpha": 0.9},
                "distilled 86.20 ± 1.02 % vs scratch 88.21 ± 0.53 % (−2.01 points, beyond noise: KD is worse here)"),
}


def url_schema(n_train: int, max_epochs: float) -> dict:
    """The Distill settings a link carries (``?hidden=16&transfer=labelled&transfer_n=1000&T=4``)."""
    return {"arch": (str, DEFAULT_STUDENT.arch, ["mlp", "cnn"]),
            "hidden": (str, ", ".join(map(str, DEFAULT_STUDENT.hidden)), HIDDEN_RE),
            "channels": (str, ", ".join(map(str, DEFAULT_STUDENT.channels)), CHANNELS_RE),
            "cnn_layout": (str, DEFAULT_STUDENT.cnn_layout, list(CNN_LAYOUTS)),
            "T": (float, 4.0, (0.5, 50.0)), "alpha": (float, 0.9, (0.0, 1.0)),
            "transfer": (str, DEFAULT_TRANSFER, list(TRANSFER_KINDS)),
            "transfer_n": (int, min(DEFAULT_TRANSFER_N, n_train), (0, n_train)), "omit": (list, ("3",), DIGITS),
            "epochs": (float, min(float(DEFAULT_TRAIN.epochs), max_epochs), (0.05, max_epochs)),
            "seed": (int, DEFAULT_TRAIN.seed, (0, 10_000)), "lr": (float, DEFAULT_TRAIN.lr, list(forms.LRS)),
            "batch": (int, DEFAULT_TRAIN.batch_size, list(forms.BATCH_SIZES))}


def apply_preset(n_train: int) -> None:
    """Selectbox callback: the chosen preset's values into the widgets (before they are drawn);
    N images at most the training set's size (the synthetic fallback has fewer than MNIST)."""
    name = st.session_state.get(P + "preset")
    if name in PRESETS:
        for key, value in PRESETS[name][1].items():
            st.session_state[P + key] = min(value, n_train) if key == "transfer_n" else value


def preset_picker(n_train: int) -> None:
    st.selectbox("Preset", [""] + list(PRESETS), key=P + "preset", on_change=apply_preset, args=(n_train,),
                 format_func=lambda k: PRESETS[k][0] if k else "(your own settings)",
                 help="Sets the widgets below; the measured result over 3 seeds is shown beside it.")
    name = st.session_state.get(P + "preset")
    if name in PRESETS:
        st.caption(f"Measured over 3 seeds: {PRESETS[name][2]}.")


def verdict(spec: dict, r: dict) -> None:
    """One seed says little; the same settings run with more seeds get mean ± std and the 2·SE verdict."""
    runs = seeds.record(spec, r)
    if len(runs) >= 2:
        st.info(seeds.verdict_text(runs), icon=":material/casino:")
    else:
        diff = 100 * (r["test_acc"]["distilled"] - r["test_acc"]["scratch"])
        st.info(f"Distilled − scratch: {diff:+.2f} points, from **one seed: noise unknown**. A difference of a few "
                "tenths of a point can flip with the seed: press **Run the next seed** (same settings) to get mean ± std "
                "and a verdict, or use the **Experiments** page or `python -m kdviz compare --methods kd --seeds 3 ...`.",
                icon=":material/casino:")
    st.button(f"Run the next seed ({seeds.next_seed(runs)})", key="distill_next_seed", on_click=start_next_seed,
              args=(seeds.next_seed(runs),), help="The same settings with the next unused seed; this run stays counted.")


def start_next_seed(seed: int) -> None:
    st.session_state[P + "seed"] = seed
    start()


# ----------------------------------------------------------------------------- settings
def transfer_inputs(n_train: int) -> None:
    kind = st.selectbox("Transfer set (what the students learn from)", list(TRANSFER_KINDS), key="distill_transfer",
                        format_func=TRANSFER_KINDS.get, persist_state=forms.KEEP)
    if kind in ("subset", "labelled"):
        st.number_input("N images" if kind == "subset" else "N labelled images", min_value=1 if kind == "subset" else 0,
                        max_value=n_train, step=100, key="distill_transfer_n", persist_state=forms.KEEP)
    elif kind == "without":
        st.multiselect("Digits left out", DIGITS, key="distill_omit", persist_state=forms.KEEP,
                       help="Hinton et al. (2015) left out every 3: the distilled student still recognises most 3s.")


def transfer_choice() -> str:
    s = st.session_state
    kind = s.get("distill_transfer", "full")
    if kind in ("subset", "labelled"):
        return f"{kind}:{int(s.get('distill_transfer_n', 1000))}"
    if kind == "without":
        return "without:" + ",".join(str(d) for d in sorted(int(d) for d in s.get("distill_omit", ["3"])))
    return "full"


def kd_inputs() -> None:
    c1, c2 = st.columns(2)
    c1.slider("Temperature T", 0.5, 50.0, step=0.5, key="distill_T", persist_state=forms.KEEP,  # value: url_state
              help="Softens both softmaxes; the KD term is multiplied by T² so its gradients keep their size.")
    c2.slider("alpha", 0.0, 1.0, step=0.05, key="distill_alpha", persist_state=forms.KEEP)
    st.caption("total = alpha·KD + (1−alpha)·CE: **alpha weights the distillation term**. Some libraries "
               "(e.g. the Keras knowledge-distillation example) use the opposite convention, alpha on the "
               "label loss. alpha = 0 trains on labels only; alpha = 1 on the teacher only.")
    info = METHODS["kd"]
    with st.expander(f"{info.label} — {info.paper}"):
        st.latex(info.formula)
        st.markdown(f"**Transfers:** {info.transfers}.")
    schedule_inputs()


SCHEDULE_HELP = {"constant": "constant", "linear": "linear to an end value", "cosine": "cosine to an end value"}


def schedule_inputs() -> None:
    """Progressive distillation: T and alpha may move from their start to an end value over training."""
    c1, c2 = st.columns(2)
    t_kind = c1.selectbox("T schedule", SCHEDULES, key="distill_T_schedule", format_func=SCHEDULE_HELP.get, persist_state=forms.KEEP)
    a_kind = c2.selectbox("alpha schedule", SCHEDULES, key="distill_alpha_schedule", format_func=SCHEDULE_HELP.get,
                          persist_state=forms.KEEP)
    if t_kind != "constant":
        c1.slider("T at the end", 0.5, 50.0, 1.0, step=0.5, key="distill_T_end", persist_state=forms.KEEP)
    if a_kind != "constant":
        c2.slider("alpha at the end", 0.0, 1.0, 0.5, step=0.05, key="distill_alpha_end", persist_state=forms.KEEP)
    if t_kind != "constant" or a_kind != "constant":
        d = distill_from_state()
        st.plotly_chart(schedule_figure(d), key="distill_schedule_preview", theme=None)


def distill_from_state() -> dict:
    """The spec's "distill" dict (DistillConfig fields) from the widgets; ends only for moving schedules."""
    s = st.session_state
    out = {"T": float(s.get("distill_T", 4.0)), "alpha": float(s.get("distill_alpha", 0.9))}
    for name, default in (("T", 1.0), ("alpha", 0.5)):
        kind = s.get(f"distill_{name}_schedule", "constant")
        out[f"{name}_schedule"] = kind
        if kind != "constant":
            out[f"{name}_end"] = float(s.get(f"distill_{name}_end", default))
    return out


def schedule_figure(d: dict):
    progress, T = schedule_curve(d.get("T_schedule", "constant"), d["T"], d.get("T_end"))
    _, alpha = schedule_curve(d.get("alpha_schedule", "constant"), d["alpha"], d.get("alpha_end"))
    return figures.schedule_preview(progress, T, alpha)


@st.cache_data(show_spinner=False, max_entries=32)
def _shapes(key: str, _cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    return feature_shapes(build_model(_cfg))


def layer_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Per-sample feature shapes of a network (name → shape), cached per architecture."""
    return _shapes(repr(cfg), cfg)


def layer_names(cfg: ModelConfig, maps_only: bool) -> list[str]:
    """Feature names of a network (``[B,C,H,W]`` maps only when ``maps_only``), cached per architecture."""
    return [k for k, shape in layer_shapes(cfg).items() if not maps_only or len(shape) == 3]


def default_index(method: str, options: list[str], own: ModelConfig, other: ModelConfig) -> int:
    """Where the method's own default layer (:func:`kdviz.methods.default_layer`) sits in ``options``.

    The first layer is not a safe default: FitNets from an MLP student (vectors) to a CNN teacher's
    first layer (a map) cannot be paired, and the engine's defaults (e.g. AT on the last map of at
    least 7×7, RKD/CRD on the embedding) are what each method's declaration (``kdviz.methods.METHODS``) describes.
    """
    layer = default_layer(method, layer_shapes(own), layer_shapes(other))
    return options.index(layer) if layer in options else 0


def method_inputs(student: ModelConfig | None, teacher: ModelConfig | None) -> None:
    """The method-selector hook: extra terms with weights and layer pairing (sent as spec["terms"])."""
    chosen = st.multiselect("Extra distillation terms", EXTRA_METHODS, key="distill_methods", persist_state=forms.KEEP,
                            format_func=lambda m: METHODS[m].label,
                            help="Added to the KD objective with the weight you give; feature terms pair a student layer with a teacher layer.")
    for m in chosen:
        info = METHODS[m]
        with st.expander(f"{info.label} — {info.paper}", expanded=True):
            st.latex(info.formula)
            st.markdown(f"**Transfers:** {info.transfers}.")
            if info.note:
                st.caption(info.note)
            cols = st.columns(3)
            cols[0].number_input("weight", min_value=0.0, value=float(info.default_weight), key=f"distill_w_{m}", persist_state=forms.KEEP)
            if info.param is not None:  # e.g. JS's beta; checked by Term when Start builds the objective
                cols[1].number_input(info.param.label, value=float(info.param.default), step=0.1, format="%.3g",
                                     key=f"distill_p_{m}", persist_state=forms.KEEP)
            if info.needs != "logits" and student is not None and teacher is not None:
                maps = info.needs == "maps"
                s_opts, t_opts = layer_names(student, maps) or ["(none)"], layer_names(teacher, maps) or ["(none)"]
                cols[1].selectbox("student layer", s_opts, index=default_index(m, s_opts, student, teacher),
                                  key=f"distill_sl_{m}", persist_state=forms.KEEP)
                cols[2].selectbox("teacher layer", t_opts, index=default_index(m, t_opts, teacher, student),
                                  key=f"distill_tl_{m}", persist_state=forms.KEEP)


def terms_from_state() -> list[dict]:
    s = st.session_state
    out = []
    for m in s.get("distill_methods", []):
        sl, tl = s.get(f"distill_sl_{m}", ""), s.get(f"distill_tl_{m}", "")
        term = {"method": m, "weight": float(s.get(f"distill_w_{m}", METHODS[m].default_weight)),
                "student_layer": "" if sl == "(none)" else sl, "teacher_layer": "" if tl == "(none)" else tl}
        if METHODS[m].param is not None:
            term["param"] = float(s.get(f"distill_p_{m}", METHODS[m].param.default))
        out.append(term)
    return out


# ----------------------------------------------------------------------------- start
def start() -> None:
    st.session_state.pop("distill_error", None)
    path, summary = teachers.current_teacher()
    try:
        if not path:
            raise ValueError("there is no teacher yet: train one on the Teacher page or use the shipped default")
        student, notes_m = clamp_model_config(forms.model_from_state(JOB), limits())
        choice = transfer_choice()
        n = parse_transfer(choice).size(get_bundle(data_source()).train.y)  # the job parses it once more, in its process
        train, notes_t = clamp_train_config(forms.train_from_state(JOB), limits(), n_train=n)
        distill = distill_from_state()
        DistillConfig(**distill)  # a bad schedule stops here, before any job starts
        terms = terms_from_state()
        parse_terms(terms)  # so does a method setting out of range (JS's β outside (0, 1))
        spec = {"fn": "kdviz.runtime.training_jobs:distill_job", "teacher": path, "student": forms.spec_dict(student),
                "train": forms.spec_dict(train), "distill": distill,
                "terms": terms, "transfer": choice, "data": data_source(), "device": current_device(),
                "cache_dir": teacher_cache_dir(jobs_root()),
                "ui": {"total_steps": total_steps(max(1, n), train), "teacher_acc": (summary or {}).get("test_acc")}}
        start_job(JOB, spec)
    except ValueError as err:
        st.session_state["distill_error"] = str(err)
        return
    st.session_state["distill_notes"] = notes_m + notes_t


# ----------------------------------------------------------------------------- live view
def draw(handle) -> None:
    if handle is None:
        st.caption("Press **Start**: the distilled student (learning from the teacher) and the scratch student "
                   "(same network, same initial weights and data order, labels only) train side by side here.")
        return
    live.status_line(handle)
    ui = handle.spec.get("ui", {})
    live.progress(handle, ui.get("total_steps"))
    students = ("distilled", "scratch")
    c1, c2 = st.columns(2)
    with c1:
        raw = st.toggle("Show raw unscaled losses (compare across T)", key="distill_raw_kl")
        st.plotly_chart(live.figure("distill_breakdown", handle, lambda: figures.loss_breakdown(
            handle.records("distilled"), raw=raw, title="Distilled student: raw loss terms" if raw else None), raw),
            key="distill_breakdown_chart", theme=None)
        d = handle.spec.get("distill", {})
        if d.get("T_schedule", "constant") != "constant" or d.get("alpha_schedule", "constant") != "constant":
            st.plotly_chart(schedule_figure(d), key="distill_schedule_live", theme=None)
            last = handle.records("distilled")[-1:] or [{}]
            if last[0].get("T") is not None:
                st.caption(f"Now: T = {last[0]['T']:.2f}, α = {last[0]['alpha']:.2f} (step {last[0]['step']}).")
    teacher_acc = (handle.result or {}).get("test_acc", {}).get("teacher", ui.get("teacher_acc"))
    c2.plotly_chart(live.figure("distill_acc", handle, lambda: figures.accuracy_curves(
        {n: handle.evals(n) for n in students}, teacher_acc, title="Test accuracy (live: ≤2,000-image sample)"), teacher_acc),
        key="distill_acc_chart", theme=None)
    c3, c4 = st.columns(2)
    c3.plotly_chart(live.figure("distill_ce", handle, lambda: figures.metric_curves(
        {n: handle.records(n) for n in students}, key="raw.ce", title="Cross-entropy with the true labels")),
        key="distill_ce_chart", theme=None)
    c4.plotly_chart(live.figure("distill_train_acc", handle, lambda: figures.metric_curves(
        {n: handle.records(n) for n in students}, key="train_acc", title="Training-batch accuracy",
        y_title="accuracy", percent=True)),
        key="distill_train_acc_chart", theme=None)
    if handle.result:
        results(handle.spec, handle.result)
        live.save_controls(JOB, "distill")


def results(spec: dict, r: dict) -> None:
    st.subheader("Results on the full test set")
    verdict(spec, r)
    acc, agree = r["test_acc"], r["agreement"]
    c = st.columns(5)
    c[0].metric("Teacher", f"{100 * acc['teacher']:.2f}%")
    c[1].metric("Distilled student", f"{100 * acc['distilled']:.2f}%", f"{100 * (acc['distilled'] - acc['scratch']):+.2f} pts vs scratch")
    c[2].metric("Scratch student", f"{100 * acc['scratch']:.2f}%")
    c[3].metric("Agreement with teacher (distilled)", f"{100 * agree['distilled']:.1f}%")
    c[4].metric("Agreement with teacher (scratch)", f"{100 * agree['scratch']:.1f}%")
    if r.get("teacher_data_source") and r["teacher_data_source"] != r.get("data_source"):
        st.warning(f"The teacher was trained on {md_text(r['teacher_data_source'])} data, the students on {r['data_source']}.")
    st.dataframe(size_speed_table(r), hide_index=True)
    tabs = st.tabs(["Confusion: distilled", "Confusion: scratch", "Confusion: teacher", "Per digit"])
    for tab, name in zip(tabs, ("distilled", "scratch", "teacher")):
        tab.plotly_chart(figures.confusion_heatmap(r["confusion"][name], f"{name}: true vs predicted digit"), key=f"distill_conf_{name}", theme=None)
    tabs[3].plotly_chart(figures.per_class_bars(r["per_class"]), key="distill_per_class_chart", theme=None)
    calibration(r)


def calibration(r: dict) -> None:
    """ECE and the reliability diagram of the three networks (results of older runs carry none)."""
    rel = r.get("reliability")
    if not rel:
        return
    st.markdown("**Calibration.** Does a network's confidence match how often it is right? Expected calibration "
                "error (ECE, 15 equal-width confidence bins) is the gap between the two, averaged over the test set: "
                "0 is perfectly calibrated. Soft targets at a high T often make the student less over-confident; "
                "one run is one seed, so compare over seeds (Experiments, T sweep) before trusting a difference.")
    cols = st.columns(len(rel))
    for col, (name, bins) in zip(cols, rel.items()):
        col.metric(f"ECE: {name}", f"{100 * bins['ece']:.2f}%")
    st.plotly_chart(figures.reliability_diagram(rel), key="distill_reliability_chart", theme=None)


def size_speed_table(r: dict) -> pd.DataFrame:
    t, s = r["teacher"], r["student"]
    rows = [("Teacher", t, r["test_acc"]["teacher"]), ("Student (distilled)", s, r["test_acc"]["distilled"]),
            ("Student (scratch)", s, r["test_acc"]["scratch"])]
    return pd.DataFrame([{"network": name, "architecture": m["label"], "parameters": m["params"], "size (MB)": round(m["size_mb"], 3),
                          "ms per 256-image batch": round(m["ms_per_batch"], 2), "test accuracy (%)": round(100 * a, 2)}
                         for name, m, a in rows])


# ----------------------------------------------------------------------------- page
st.title("Distill")
st.markdown("A small student learns from the teacher's softened outputs (**distilled**) while an identical "
            "student with the same initial weights and data order learns from the labels alone (**scratch**).")
teacher_path = teachers.teacher_box(JOB)
_, summary = teachers.current_teacher()
bundle = get_bundle(data_source())
schema = url_schema(len(bundle.train), cap("max_epochs", 50.0))
url_state(schema, P)  # a shared link's settings; a bad value → a warning naming it, and the default

with st.expander("Student, distillation and training settings", expanded=get_job(JOB) is None):
    preset_picker(len(bundle.train))
    left, right = st.columns(2)
    with left:
        st.markdown("**Student network**")
        forms.model_inputs(JOB, DEFAULT_STUDENT)
        st.markdown("**Soft targets**")
        kd_inputs()
    with right:
        st.markdown("**Transfer set and training**")
        transfer_inputs(len(bundle.train))
        forms.train_inputs(JOB, DEFAULT_TRAIN, max_epochs=cap("max_epochs", 50.0))
    try:
        student_cfg = forms.model_from_state(JOB)
    except ValueError:
        student_cfg = None  # the error shows when Start is pressed
    teacher_cfg = ModelConfig(**summary["model"]) if summary and summary.get("model") else None
    method_inputs(student_cfg, teacher_cfg)

if not teacher_path:
    st.warning("Distillation needs a teacher: train one on the Teacher page, or use the shipped default above.")
live.controls(JOB, on_start=start)
if st.session_state.get("distill_error"):
    st.error(st.session_state["distill_error"])
show_clamp_notes(st.session_state.get("distill_notes", []))
live.live_panel(JOB, draw)
sync_url(schema, P)
