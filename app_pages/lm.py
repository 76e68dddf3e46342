"""Language models page: distil a character-level transformer that writes first names, live.

Teacher (shipped, or retrained here), then distilled and scratch students side by side; a token-level
view of one word; the reduction trap; vocabulary alignment; sequence-level KD over seeds.
Everything is computed by ``kdviz.lm`` (no Streamlit there); this page only lays it out.
"""
from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import streamlit as st

from kdviz.figures import lm as figs
from kdviz.lm.corpus import NAMES_VOCAB, check_word
from kdviz.lm.experiments import bpc_table
from kdviz.lm.kd import vocab_map
from kdviz.lm.model import STUDENT, load_lm, make_lm
from kdviz.lm.runs import DEFAULT_TRAIN_N, OTHER_VOCAB, SHIPPED_TEACHER, STUDENT_TRAIN, TEACHER_TRAIN, reindexed, teacher_for
from kdviz.lm.train import check_sample_temp, sample
from kdviz.lm.view import reduction_rows, token_view
from kdviz.ui import live
from kdviz.ui.forms import KEEP
from kdviz.ui.jobs import get_job, start_job
from kdviz.ui.urlstate import sync_url, url_state

P = "lm_"
TEACHER_JOB, DISTILL_JOB, SEEDS_JOB = "lm_teacher", "lm_distill", "lm_seeds"
SCHEMA = {
    "T": (float, STUDENT_TRAIN.T, (0.5, 10.0)),
    "alpha": (float, STUDENT_TRAIN.alpha, (0.0, 1.0)),
    "steps": (int, STUDENT_TRAIN.steps, (10, 5000)),
    "train_n": (int, DEFAULT_TRAIN_N, (10, 4647)),
    "temp": (float, 1.0, (0.0, 5.0)),  # 0 is let through so the page can say why it is refused
}
RUN_LABELS = {"distilled": "distilled (token-level KD)", "scratch": "scratch", "batchmean": "KD with batchmean (the trap)",
              "seqkd": "sequence-level KD", "teacher": "teacher"}
UPLOADS = Path(tempfile.gettempdir()) / "kdviz-uploads"


# ----------------------------------------------------------------------------- models
@st.cache_resource(show_spinner=False, max_entries=16)
def _load(path: str, mtime: float):
    return load_lm(path)


def load(path: str | Path):
    path = Path(path)
    return _load(str(path), path.stat().st_mtime)


def teacher_path() -> Path:
    return Path(st.session_state.get("lm_teacher_path") or SHIPPED_TEACHER)


def student_model():
    """The distilled student of the last finished run, else an untrained student (said on the page),
    and a key naming it (for the cached views)."""
    handle = get_job(DISTILL_JOB)
    paths = (handle.result or {}).get("checkpoints", {}) if handle else {}
    if "distilled" in paths and Path(paths["distilled"]).is_file():
        return load(paths["distilled"]).model, "the distilled student of your last run", paths["distilled"]
    return make_lm(STUDENT, 0).eval(), "an untrained student (run a distillation above to see a trained one)", "untrained"


@st.cache_data(show_spinner=False, max_entries=64)
def cached_reduction_rows(key: tuple, _teacher, _student, T: float, alpha: float) -> list[dict]:
    """``reduction_rows`` once per (teacher, student, T, alpha): every rerun of the page would redo it."""
    return reduction_rows(_teacher, _student, T, alpha)


def sample_temp() -> float | None:
    try:
        return check_sample_temp(float(st.session_state[P + "temp"]))
    except ValueError as err:
        st.error(f"{err} — the samples use softmax(logits / temperature), so it must be above 0.")
        return None


def train_spec() -> dict:
    s = st.session_state
    return {"steps": int(s[P + "steps"]), "T": float(s[P + "T"]), "alpha": float(s[P + "alpha"]),
            "sample_temp": float(s[P + "temp"]), "eval_every": max(1, int(s[P + "steps"]) // 5)}


def start(name: str, fn: str, **extra) -> None:
    st.session_state.pop("lm_error", None)
    try:
        if name != TEACHER_JOB:
            check_sample_temp(float(st.session_state[P + "temp"]))
        spec = {"fn": f"kdviz.lm.jobs:{fn}", "train": train_spec(), "train_n": int(st.session_state[P + "train_n"]),
                "teacher": str(teacher_path()), **extra}
        if name == TEACHER_JOB:
            steps = int(st.session_state.get("lm_teacher_steps", TEACHER_TRAIN.steps))
            spec = {"fn": spec["fn"], "train": {"steps": steps, "eval_every": max(1, steps // 10),
                                                "sample_temp": spec["train"]["sample_temp"]}}
        start_job(name, spec)
    except ValueError as err:
        st.session_state["lm_error"] = str(err)


# ----------------------------------------------------------------------------- teacher
def teacher_section() -> None:
    st.header("1 · The teacher")
    path = teacher_path()
    try:
        ckpt = load(path)
    except (OSError, ValueError) as err:
        st.error(f"The teacher at `{path}` cannot be used: {err}")
        return
    m = ckpt.meta
    c = st.columns(3)
    c[0].metric("Teacher", ckpt.model.cfg.label())
    c[1].metric("Validation bits / character", f"{m['val_bpc']:.3f}" if "val_bpc" in m else "–")
    c[2].metric("Parameters", f"{sum(p.numel() for p in ckpt.model.parameters()):,}")
    temp = sample_temp()
    if temp is not None:
        st.caption(f"Names it writes at sampling temperature {temp:g}: **{', '.join(sample(ckpt.model, ckpt.vocab, 10, temp))}**")
    source = "trained here" if path != SHIPPED_TEACHER else "shipped with kdviz (`python -m kdviz lm make-teacher`)"
    st.caption(f"Teacher: {source}. Retraining takes about a minute on two CPU cores.")
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    c1.number_input("Teacher steps", 10, 10000, TEACHER_TRAIN.steps, step=100, key="lm_teacher_steps", persist_state=KEEP)
    c2.button("Retrain the teacher", key="lm_teacher_start", on_click=start, args=(TEACHER_JOB, "lm_teacher_job"))
    live.live_panel(TEACHER_JOB, draw_teacher)
    upload_box()


def draw_teacher(handle) -> None:
    if handle is None:
        return
    live.status_line(handle)
    live.progress(handle, handle.spec["train"]["steps"])
    st.plotly_chart(live.figure("lm_teacher_bpc", handle, lambda: figs.bpc_curves({"teacher": handle.records("teacher")})),
                    key="lm_teacher_chart", theme=None)
    if handle.result and st.session_state.get("lm_teacher_adopted") != handle.id:
        st.session_state["lm_teacher_adopted"] = handle.id
        st.session_state["lm_teacher_path"] = handle.result["checkpoint"]
        st.rerun()


def upload_box() -> None:
    data = st.file_uploader("…or use your own teacher (a checkpoint saved by kdviz's language-model lab)", type=["pt"],
                            key="lm_teacher_upload")
    if data is None:
        return
    try:
        ckpt = load_lm(io.BytesIO(data.getvalue()))
        teacher_for(ckpt, NAMES_VOCAB, align=False)  # a differing vocabulary is refused here, by name and size
    except ValueError as err:
        st.error(f"That teacher cannot be used as it is: {err}")
        return
    UPLOADS.mkdir(parents=True, exist_ok=True)
    path = UPLOADS / f"lm-teacher-{uuid.uuid4().hex}.pt"
    path.write_bytes(data.getvalue())
    st.session_state["lm_teacher_path"] = str(path)
    st.success(f"Using the uploaded teacher {ckpt.model.cfg.label()} ({data.name}).")


# ----------------------------------------------------------------------------- distillation
def settings() -> None:
    c = st.columns(5)
    c[0].slider("Temperature T", 0.5, 10.0, step=0.5, key=P + "T", persist_state=KEEP)
    c[1].slider("alpha (weight of KD)", 0.0, 1.0, step=0.05, key=P + "alpha", persist_state=KEEP)
    c[2].number_input("Steps", 10, 5000, step=50, key=P + "steps", persist_state=KEEP)
    c[3].number_input("Real names the students see", 10, 4647, step=50, key=P + "train_n", persist_state=KEEP,
                      help="Little text is where a teacher's soft targets help most.")
    c[4].number_input("Sampling temperature", 0.0, 5.0, step=0.1, key=P + "temp", persist_state=KEEP)
    st.caption("total = alpha·KD + (1−alpha)·CE; KD = KL(softmax(teacher/T) ‖ softmax(student/T))·T², "
               "the mean over the real (unpadded) character positions.")


def distill_section() -> None:
    st.header("2 · Distil: teacher → student, live")
    settings()
    c = st.columns(3)
    c[0].button("Distil: KD vs scratch", key="lm_distill_start", type="primary", on_click=start,
                args=(DISTILL_JOB, "lm_distill_job"), kwargs={"methods": ["distilled", "scratch"]})
    c[1].button("Also the reduction trap (batchmean)", key="lm_trap_start", on_click=start,
                args=(DISTILL_JOB, "lm_distill_job"), kwargs={"methods": ["distilled", "batchmean", "scratch"]})
    c[2].button("Also sequence-level KD", key="lm_seqkd_start", on_click=start,
                args=(DISTILL_JOB, "lm_distill_job"), kwargs={"methods": ["distilled", "seqkd", "scratch"]})
    live.controls(DISTILL_JOB, on_start=lambda: start(DISTILL_JOB, "lm_distill_job"), prefix="lm_run")
    live.live_panel(DISTILL_JOB, draw_distill)


def draw_distill(handle) -> None:
    if handle is None:
        st.caption("Press a button above: the students' curves and the names they write appear here live.")
        return
    live.status_line(handle)
    live.progress(handle, handle.spec["train"]["steps"])
    runs = {RUN_LABELS.get(n, n): handle.records(n) for n in handle.runs}
    c1, c2 = st.columns(2)
    c1.plotly_chart(live.figure("lm_bpc", handle, lambda: figs.bpc_curves(runs)), key="lm_bpc_chart", theme=None)
    c2.plotly_chart(live.figure("lm_terms", handle, lambda: figs.loss_terms(runs)), key="lm_terms_chart", theme=None)
    latest = {label: next((r["samples"] for r in reversed(recs) if r.get("samples")), []) for label, recs in runs.items()}
    st.dataframe(pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in latest.items()}), key="lm_samples_table")
    if handle.result:
        r = handle.result
        cols = st.columns(len(r["val_bpc"]))
        for col, (name, bpc) in zip(cols, r["val_bpc"].items()):
            col.metric(f"{RUN_LABELS.get(name, name)}: val bpc", f"{bpc:.3f}")
        if r.get("aligned"):
            st.info(f"Trained with the aligned teacher: {r['dropped_mass']:.2%} of its probability (on {r['dropped_tokens']}) "
                    "was dropped and the rest renormalised.")
        st.caption(f"Trained on {r['train_n']:,} real names in {r['train_s']:.1f} s.")


# ----------------------------------------------------------------------------- token-level view and the reduction trap
def token_section(teacher, student, who: str) -> None:
    st.header("3 · One word, position by position")
    word = st.text_input("A name (or any word in a–z)", "emma", key="lm_word", max_chars=40)
    T = float(st.session_state[P + "T"])
    try:
        view = token_view(teacher, student, check_word(word), T)
    except ValueError as err:
        st.error(str(err))
        return
    st.caption(f"Next-character distributions at T = {T:g}; the student is {who}. Rows marked ✗ are padding: "
               "the mask leaves them out of the KD term.")
    c1, c2 = st.columns(2)
    c1.plotly_chart(figs.next_token_heatmap(view["teacher"], view["positions"], view["vocab"], "Teacher", view["excluded"]),
                    key="lm_heat_teacher", theme=None)
    c2.plotly_chart(figs.next_token_heatmap(view["student"], view["positions"], view["vocab"], "Student", view["excluded"]),
                    key="lm_heat_student", theme=None)
    st.plotly_chart(figs.per_position_kl(view["kd"], view["positions"], view["excluded"]), key="lm_kl_chart", theme=None)


def reduction_section(teacher, student, key: tuple) -> None:
    st.header("4 · The reduction trap")
    st.markdown("`F.kl_div(..., reduction=\"batchmean\")` divides by the **batch size B**, not by the number of tokens: "
                "over `[B, S, V]` it sums the KL of every position — padding included — and divides by B. The KD "
                "term then grows with sequence length, and alpha no longer means what it says.")
    T, alpha = float(st.session_state[P + "T"]), float(st.session_state[P + "alpha"])
    rows = cached_reduction_rows(key, teacher, student, T, alpha)
    c1, c2 = st.columns(2)
    c1.plotly_chart(figs.reduction_vs_length(rows), key="lm_reduction_chart", theme=None)
    c2.plotly_chart(figs.kd_share_vs_length(rows, alpha), key="lm_share_chart", theme=None)
    st.caption("Same batch of 32 validation names, padded to each length. Press **Also the reduction trap** above to "
               "train with batchmean and with the right reduction side by side.")


# ----------------------------------------------------------------------------- vocabulary alignment, seeds
def vocab_section(ckpt) -> None:
    st.header("5 · A teacher with another vocabulary")
    st.markdown("KD compares teacher and student logits **index by index**. A teacher whose characters are ordered "
                "differently (or include characters the student lacks) would silently teach nonsense.")
    if not st.toggle("Use the teacher re-indexed to another vocabulary", key="lm_other_vocab"):
        return
    other = reindexed(ckpt, OTHER_VOCAB)
    try:
        teacher_for(other, NAMES_VOCAB, align=False)
    except ValueError as err:
        st.error(f"Refused: {err}")
    vmap = vocab_map(other.vocab, NAMES_VOCAB)
    st.markdown(f"**The fix:** map each student character to the teacher's index of the same character, drop the "
                f"teacher's extra tokens {list(vmap.dropped)}, renormalise what is left.")
    st.dataframe(pd.DataFrame({"student char": list(NAMES_VOCAB.chars), "student id": range(NAMES_VOCAB.size),
                               "teacher id": vmap.index}).set_index("student char").T, key="lm_vocab_table")
    st.button("Distil with the aligned teacher", key="lm_align_start", on_click=start, args=(DISTILL_JOB, "lm_distill_job"),
              kwargs={"methods": ["distilled", "scratch"], "teacher_vocab": "other", "align": True})


def seeds_section() -> None:
    st.header("6 · Sequence-level vs token-level KD, over seeds")
    st.markdown("Sequence-level KD (Kim & Rush 2016) trains the student with plain cross-entropy on names the "
                "**teacher generated**. Three seeds each, so the difference can be told from noise.")
    st.button("Run 3 seeds × (sequence-level KD, token-level KD, scratch)", key="lm_seeds_start", on_click=start,
              args=(SEEDS_JOB, "lm_seeds_job"), kwargs={"seeds": [0, 1, 2]})
    live.live_panel(SEEDS_JOB, draw_seeds)


def draw_seeds(handle) -> None:
    if handle is None:
        return
    live.status_line(handle)
    if handle.result:
        st.plotly_chart(figs.seeds_bars(handle.result["bpc"], handle.result["teacher_bpc"]), key="lm_seeds_chart", theme=None)
        st.dataframe(bpc_table(handle.result), key="lm_seeds_table")


def main() -> None:
    st.title("Language models: distilling a name writer")
    st.markdown("A character-level transformer trained on 5,163 US Census first names teaches a ten-times smaller "
                "student. Every prediction is a distribution over 27 characters, so KD works **per position**.")
    url_state(SCHEMA, P)
    teacher_section()
    distill_section()
    if st.session_state.get("lm_error"):
        st.error(st.session_state["lm_error"])
    sync_url(SCHEMA, P)
    try:
        ckpt = load(teacher_path())
    except (OSError, ValueError):
        return
    student, who, student_key = student_model()
    token_section(ckpt.model, student, who)
    reduction_section(ckpt.model, student, (str(teacher_path()), student_key))
    vocab_section(ckpt)
    seeds_section()


main()
