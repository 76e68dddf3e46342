"""Home: what knowledge distillation is, one picture, and the one-click classroom demo.

The demo is Hinton, Vinyals & Dean's (2015, §3) "digit the student never saw": every 3 is removed
from the student's training images; the distilled student recognises 3s anyway from the teacher's
soft targets, the scratch student cannot. A slider adds a bias to the 3's logit (the paper's
correction) and recomputes accuracy live from the stored test logits — no model needed.
"""
from __future__ import annotations

import streamlit as st

from kdviz.experiments import scenarios as sc
from kdviz.experiments.recipes import teacher_candidates
from kdviz.experiments.scenario_specs import CLASSROOM_DEMO, classroom_demo, hosted_overrides, scenario_spec, teacher_cache_dir
from kdviz.figures import kd_diagram
from kdviz.ui import scenario_views
from kdviz.ui.frame import current_device, data_source, get_bundle
from kdviz.ui.hosted import limits
from kdviz.ui.jobs import jobs_root, start_job

JOB = "home_demo"
KIND = "omitted-digit"


def teacher_plan(bundle) -> str:
    """Which teacher the demo uses. Always the scenario's own MLP teacher (like the paper's): from the
    shipped CNN teacher an MLP student recognises far fewer of the unseen digits (48% vs 95% measured)."""
    cfg = sc.preset(KIND)
    candidates = teacher_candidates(cfg.teacher, bundle, teacher_cache_dir(jobs_root()), cfg.default_teacher)
    found = next((source for path, source in candidates if path.is_file()), None)
    when = ("already trained on this server (cached)" if found == "cached" else "shipped with kdviz (no teacher training needed)"
            if found else "trained first — about 15–30 s on a CPU, then cached")
    return f"{cfg.teacher.model.label()} with dropout, like the paper's, {when}"


def start() -> None:
    st.session_state.pop("home_error", None)
    try:
        overrides = {**CLASSROOM_DEMO, "omit": int(st.session_state.get("home_omit", 3)),
                     "seeds": int(st.session_state.get("home_seeds", 1))}
        overrides, notes = hosted_overrides(KIND, overrides, limits())
        start_job(JOB, scenario_spec(KIND, overrides, data_source(), current_device(), None, jobs_root()))
    except ValueError as err:
        st.session_state["home_error"] = str(err)
        return
    st.session_state["home_notes"] = notes
    st.session_state.pop("home_bias", None)  # a new run starts uncorrected


def draw(handle) -> None:
    scenario_views.draw_scenario_live(handle, "home", "Press **Run the classroom demo**: the teacher, then a distilled and a "
                                      "scratch student train here, live.")


# ----------------------------------------------------------------------------- page
st.title("Knowledge distillation, live")
st.markdown(
    "A big **teacher** network is trained first. A small **student** then learns from the teacher's "
    "*softened* outputs — `softmax(z / T)` at a temperature T > 1 — as well as from the labels. Those soft "
    "targets say not just *this is a 3* but *this 3 looks a little like an 8 and nothing like a 1*: "
    "the teacher's **dark knowledge**. With it a small student learns more from fewer examples "
    "(Hinton, Vinyals & Dean 2015)."
)
st.image(kd_diagram(), width="stretch")  # static SVG: no Plotly script to load first
st.caption("total loss = α · T² · KL(teacher ‖ student at temperature T) + (1 − α) · CE(student, label) — "
           "α weights the distillation term.")

try:
    bundle = get_bundle(data_source())
except ValueError as err:
    st.error(f"Data set unavailable: {err}")
    st.stop()
st.info(f"**Data:** {bundle.name} — {len(bundle.train):,} training / {len(bundle.test):,} test images · "
        f"**device:** {current_device()}", icon=":material/database:")
if bundle.source == "fallback":
    st.warning(f"Not MNIST: {bundle.message}")

st.header("Classroom demo: the digit the student never saw")
info = sc.PRESET_INFO[KIND]
st.markdown(f"{info.summary} *({info.paper}.)*")
demo = classroom_demo()
st.caption(f"Teacher: {teacher_plan(bundle)}. Student: {demo.student.model.label()}, trained for {demo.student.epochs:g} "
           f"epoch{'' if demo.student.epochs == 1 else 's'} at T = {demo.T:g} (a smaller, shorter student than the paper's 800-800 so the demo takes seconds; "
           "the **Experiments** page runs the paper-sized one).")
with st.expander("Demo settings"):
    c1, c2 = st.columns(2)
    c1.selectbox("Digit to hide from the students", list(range(10)), index=3, key="home_omit")
    c2.number_input("Seeds (repeats, for mean ± std)", 1, 5, 1, key="home_seeds",
                    help="One seed takes a few seconds of student training on a CPU; 3 or more give honest error bars.")
result = scenario_views.run_section(JOB, "Run the classroom demo", "home_demo_start", start, "home", draw)
if result:
    st.subheader("Result")
    scenario_views.show_scenario_result(result, "home")
