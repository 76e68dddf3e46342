"""Experiments lab: one-click scenarios from the literature, sweeps over seeds, and the exercises.

Every number here is a mean ± std over seeds, and a difference smaller than twice its standard
error is marked *within noise*.
"""
from __future__ import annotations

import streamlit as st

from kdviz.experiments import scenarios as sc
from kdviz.experiments import precomputed
from kdviz.experiments import sweeps as sw
from kdviz.experiments.scenario_specs import hosted_overrides, scenario_spec, teacher_cache_dir
from kdviz.ui import live, scenario_views, teachers
from kdviz.ui.frame import current_device, data_source, get_bundle
from kdviz.ui.hosted import limits
from kdviz.ui.jobs import jobs_root, start_job
from kdviz.ui.text import md_text
from kdviz.ui.urlstate import sync_url, url_state

SCENARIO_JOB, SWEEP_JOB = "exp_scenario", "exp_sweep"


def _teacher_ckpt(kind: str) -> str | None:
    """The session's teacher when it was trained on this data and the scenario may use any teacher; else the
    job picks (shipped default / cached / trained). The omitted digit and Hinton's setting need their own MLP teacher."""
    if not sc.preset(kind).default_teacher:
        return None
    path, summary = teachers.current_teacher()
    if path and (summary or {}).get("data_source") in (None, get_bundle(data_source()).source):
        return path
    return None


# ----------------------------------------------------------------------------- scenarios
def scenario_overrides(kind: str) -> dict:
    s = st.session_state
    out = {"seeds": int(s.get("exp_seeds", 1)), "T": float(s.get("exp_T", sc.preset(kind).T)),
           "alpha": float(s.get("exp_alpha", sc.preset(kind).alpha)), "epochs": float(s.get("exp_epochs", sc.preset(kind).student.epochs))}
    if kind == "omitted-digit":
        out["omit"] = int(s.get("exp_omit", 3))
    if kind in ("few-labels", "unlabelled"):
        out["n_labelled"] = int(s.get("exp_n_labelled", 1000))
    return out


def start_scenario() -> None:
    st.session_state.pop("exp_error", None)
    kind = st.session_state.get("exp_kind", "omitted-digit")
    try:
        overrides, notes = hosted_overrides(kind, scenario_overrides(kind), limits())
        spec = scenario_spec(kind, overrides, data_source(), current_device(), _teacher_ckpt(kind), jobs_root())
        if kind == "hinton":  # a fixed folder: running it again resumes where it stopped
            spec["run_dir"] = str(jobs_root() / f"hinton-{data_source()}-T{overrides['T']:g}-a{overrides['alpha']:g}")
        start_job(SCENARIO_JOB, spec)
    except ValueError as err:
        st.session_state["exp_error"] = str(err)
        return
    st.session_state["exp_notes"] = notes
    st.session_state.pop("exp_res_bias", None)


def scenario_inputs(kind: str, n_train: int) -> None:
    """The scenario's widgets; their values come from session state (seeded by ``url_settings``)."""
    c = st.columns(4)
    c[0].number_input("Seeds", 1, sc.MAX_SEEDS, key="exp_seeds", help="Repeats with different seeds; 3+ for honest error bars.")
    c[1].number_input("Temperature T", 0.5, 100.0, step=0.5, key="exp_T")
    c[2].slider("alpha (weight of the distillation term)", 0.0, 1.0, step=0.05, key="exp_alpha")
    c[3].number_input("Student epochs", 0.1, 200.0, step=1.0, key="exp_epochs")
    if kind == "omitted-digit":
        st.selectbox("Digit to hide from the students", list(range(10)), key="exp_omit")
    elif kind in ("few-labels", "unlabelled"):
        st.number_input("N labelled images", 1, n_train, step=100, key="exp_n_labelled")


# ----------------------------------------------------------------------------- shareable settings (the URL)
P = "exp_"  # ?kind=few-labels&seeds=3&T=8 seeds exp_kind, exp_seeds, exp_T; ?sweep_param=alpha&sweep_values=0,0.5,1
KIND_SCHEMA = {"kind": (str, "omitted-digit", list(sc.PRESETS)), "sweep_param": (str, "T", list(sw.SWEEP_PARAMS))}
VALUES_RE = r"[A-Za-z0-9_.+ ,;-]{0,200}"


def scenario_schema(kind: str, n_train: int) -> dict:
    """URL settings whose defaults are the chosen scenario's preset values."""
    base = sc.preset(kind)
    return {"seeds": (int, 1, (1, sc.MAX_SEEDS)), "T": (float, float(base.T), (0.5, 100.0)),
            "alpha": (float, float(base.alpha), (0.0, 1.0)), "epochs": (float, float(base.student.epochs), (0.1, 200.0)),
            "omit": (int, 3, (0, 9)), "n_labelled": (int, min(1000, n_train), (1, n_train))}


def sweep_schema(param: str) -> dict:
    return {"sweep_values": (str, _grid_text(param), VALUES_RE), "sweep_seeds": (int, 3, (1, 10)),
            "sweep_scenario": (str, "few-labels", list(sw.SWEEP_SCENARIOS))}


def url_settings(n_train: int) -> dict:
    """Seed the widgets from the URL (first run) and return the schema to write back with ``sync_url``.
    A new scenario starts from its own preset values (a shared link's values are kept on the first run)."""
    s = st.session_state
    url_state(KIND_SCHEMA, P)
    kind = s[P + "kind"]
    schema = scenario_schema(kind, n_train)
    if s.get("_exp_kind_seen", kind) != kind:
        for name in ("T", "alpha", "epochs"):
            s[P + name] = schema[name][1]
    s["_exp_kind_seen"] = kind
    schema = {**KIND_SCHEMA, **schema, **sweep_schema(s[P + "sweep_param"])}
    url_state(schema, P)
    return schema


def draw_scenario(handle) -> None:
    scenario_views.draw_scenario_live(handle, "exp_scenario", "Pick a scenario and press **Run scenario**.")


def scenarios_tab(n_train: int) -> None:
    kind = st.selectbox("Scenario", list(sc.PRESETS), key="exp_kind", format_func=lambda k: sc.PRESET_INFO[k].title)
    info = sc.PRESET_INFO[kind]
    st.markdown(f"{info.summary} *({info.paper}.)*")
    teacher = "the session's teacher (or the shipped default)" if sc.preset(kind).default_teacher else \
        f"its own {sc.preset(kind).teacher.model.label()} teacher, like the paper's (trained once, then cached)"
    st.caption(f"Teacher: {teacher}.")
    if kind == "hinton":
        st.warning("Long on a CPU (about 35 minutes per seed on one core of a 2-core machine; 2½ minutes on an H200 "
                   "GPU): this is the preset to run on a GPU. It is resumable — "
                   "stop it, and pressing Run again with the same T and alpha continues from the last finished epoch.")
    scenario_inputs(kind, n_train)
    result = scenario_views.run_section(SCENARIO_JOB, "Run scenario", "exp_run", start_scenario, "exp", draw_scenario)
    if result:
        st.subheader(sc.PRESET_INFO[result["scenario"]].title + " — result")
        scenario_views.show_scenario_result(result, "exp_res")


# ----------------------------------------------------------------------------- sweeps and exercises
def parse_values(param: str, text: str) -> tuple:
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if param == "methods":
        return tuple(parts)
    try:
        return tuple(float(p) if param in ("T", "alpha") else int(p) for p in parts)
    except ValueError as err:
        raise ValueError(f"values for {param} must be comma-separated numbers, got {text!r}") from err


def _start_sweep(spec: dict) -> None:
    st.session_state.pop("exp_sweep_error", None)
    try:
        lim = limits()
        if lim is not None:
            raise ValueError("sweeps train dozens of networks; they are switched off on this shared server")
        cfg = sw.config_from_spec(spec)  # validate here, so a bad grid is an error on the page at once
        start_job(SWEEP_JOB, {"fn": "kdviz.experiments.sweeps:sweep_job", "data": data_source(), "device": current_device(),
                              "teacher_ckpt": _teacher_ckpt(cfg.scenario) or "", "cache_dir": teacher_cache_dir(jobs_root()), **spec})
    except ValueError as err:
        st.session_state["exp_sweep_error"] = str(err)


def start_sweep() -> None:
    s = st.session_state
    param = s.get("exp_sweep_param", "T")
    try:
        values = parse_values(param, s.get("exp_sweep_values", ""))
    except ValueError as err:
        s["exp_sweep_error"] = str(err)
        return
    _start_sweep({"sweep": {"param": param, "values": values, "seeds": int(s.get("exp_sweep_seeds", 3)),
                            "scenario": s.get("exp_sweep_scenario", "few-labels")}})


def start_exercise(name: str) -> None:
    _start_sweep({"exercise": name})


def _grid_text(param: str) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sw.DEFAULT_GRIDS[param])


def _param_changed() -> None:
    st.session_state["exp_sweep_values"] = _grid_text(st.session_state["exp_sweep_param"])


def draw_sweep(handle) -> None:
    if handle is None:
        st.caption("Run a sweep or an exercise: each point trains over several seeds; the chart shows mean ± std.")
        return
    live.status_line(handle)
    if handle.result:
        scenario_views.show_sweep_result(handle.result, "exp_sweep_res")


def precomputed_panel() -> None:
    """The exercises' sweeps computed ahead on real MNIST (``bench/precompute.py``), with how they were made."""
    for name, (title, _) in sw.EXERCISES.items():
        try:
            data = precomputed.for_exercise(name)
        except ValueError as err:
            st.warning(md_text(str(err)))
            continue
        if data is not None:
            st.markdown(f"**{title}** — computed ahead")
            st.caption(precomputed.provenance_text(data["provenance"]))
            scenario_views.show_sweep_result(data["result"], f"exp_pre_{name}")


def sweeps_tab() -> None:
    if limits() is not None:  # hosted: live sweeps are off (see _start_sweep); show the same sweeps computed ahead
        st.info("Live sweeps train dozens of networks and are switched off on this shared server. Below: the same "
                "exercise computed ahead on real MNIST. Run it live on your own machine with the command shown.")
        precomputed_panel()
        return
    with st.expander("Results computed ahead (no waiting)", expanded=False):
        precomputed_panel()
    st.markdown("**Exercises** — one click each (3 seeds per point, on the Few-labels scenario):")
    cols = st.columns(len(sw.EXERCISES))
    for col, (name, (title, _)) in zip(cols, sw.EXERCISES.items()):
        col.button(title, key=f"exp_ex_{name}", on_click=start_exercise, args=(name,), width="stretch")
    with st.expander("Custom sweep", expanded=False):
        c = st.columns(4)
        c[0].selectbox("Vary", sw.SWEEP_PARAMS, key="exp_sweep_param", on_change=_param_changed)
        c[1].text_input("Values (comma-separated)", key="exp_sweep_values")
        c[2].number_input("Seeds per point", 1, 10, key="exp_sweep_seeds")
        c[3].selectbox("Scenario", sw.SWEEP_SCENARIOS, key="exp_sweep_scenario", format_func=lambda k: sc.PRESET_INFO[k].title)
        st.button("Run sweep", key="exp_sweep_run", type="primary", on_click=start_sweep)
    if st.session_state.get("exp_sweep_error"):
        st.error(st.session_state["exp_sweep_error"])
    live.live_panel(SWEEP_JOB, draw_sweep)


# ----------------------------------------------------------------------------- page
st.title("Experiments lab")
st.markdown("Famous distillation experiments in one click, and sweeps over temperature, alpha, width and born-again "
            "generations. Every comparison is a **mean ± std over seeds**, and differences smaller than twice their "
            "standard error are marked **within noise**.")
try:
    bundle = get_bundle(data_source())
except ValueError as err:
    st.error(f"Data set unavailable: {err}")
    st.stop()
st.caption(f"Data: {bundle.name} ({len(bundle.train):,} training images) · device: {current_device()}")
url_schema = url_settings(len(bundle.train))
tab_sc, tab_sw = st.tabs(["Scenarios", "Sweeps & exercises"])
with tab_sc:
    scenarios_tab(len(bundle.train))
with tab_sw:
    sweeps_tab()
sync_url(url_schema, P)
