"""Distillation catalogue: born-again networks, deep mutual learning, teacher assistants and
multi-teacher ensembles, each trained live over seeds, with mean ± std and within-noise verdicts.

The job body is ``kdviz.experiments.catalogue_jobs:catalogue_job``; figures and tables come from
``kdviz.figures.catalogue``. Defaults are the settings measured on real MNIST (see that module).
"""
from __future__ import annotations

import streamlit as st

from kdviz import figures
from kdviz.experiments import catalogue as cat
from kdviz.hosted import clamp_count
from kdviz.ui import live
from kdviz.ui.frame import current_device, data_source, get_bundle
from kdviz.ui.hosted import limits, show_clamp_notes
from kdviz.ui.jobs import get_job, start_job
from kdviz.ui.text import md_text

JOB_FN = "kdviz.experiments.catalogue_jobs:catalogue_job"
INTRO = {
    "born-again": "Generation 0 learns from the labels; each next generation (same architecture, fresh weights) is "
                  "distilled from the previous one, at its own temperature. The ensemble averages the generations' logits. "
                  "*(Furlanello et al. 2018.)*",
    "mutual": "Two or more peers start from scratch and train together, each learning from the labels and from the "
              "others' soft targets; each is compared with the same network (same initial weights and batches) trained "
              "alone. *(Zhang et al. 2018.)*",
    "ta": "A large teacher (the shipped CNN) teaches a tiny student directly, or through a mid-sized assistant that "
          "it teaches first. *(Mirzadeh et al. 2020.)*",
    "ensemble": "Two teachers of different architectures (the shipped CNN and an MLP trained here in one epoch); the student "
                "learns from their averaged logits, their averaged probabilities, or the mean of one KL term per teacher.",
}


def job_name(kind: str) -> str:
    return "cat_" + kind.replace("-", "_")


def _key(kind: str, what: str) -> str:
    return f"{job_name(kind)}_{what}"


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(w) for w in str(text).replace(" ", "").split(","))
    except ValueError as err:
        raise ValueError(f"widths must be comma-separated whole numbers, got {text!r}") from err


def _floats(text: str) -> tuple[float, ...]:
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        return tuple(float(p) for p in parts)
    except ValueError as err:
        raise ValueError(f"temperatures must be comma-separated numbers, got {text!r}") from err


def spec_from_inputs(kind: str) -> tuple[dict, list[str]]:
    """The job spec of the widgets' values (hosted caps applied); a ValueError names a bad value."""
    s, lim = st.session_state, limits()
    spec = {"kind": kind, "seeds": int(s.get(_key(kind, "seeds"), 3)), "epochs": float(s.get(_key(kind, "epochs"), 5.0)),
            "transfer": str(s.get(_key(kind, "transfer"), "subset:5000")), "hidden": _widths(s.get(_key(kind, "hidden"), "64")),
            "T": float(s.get(_key(kind, "T"), 4.0)), "alpha": float(s.get(_key(kind, "alpha"), 0.9))}
    if kind == "born-again":
        temps = _floats(s.get(_key(kind, "temps"), "1, 4, 8"))
        if not temps:
            raise ValueError("give at least one temperature (one per taught generation): 0 taught generations is no self-distillation")
        spec |= {"generations": len(temps) + 1, "temperatures": temps}
    elif kind == "mutual":
        spec["peers"] = int(s.get(_key(kind, "peers"), 2))
    elif kind == "ta":
        spec["assistant_hidden"] = _widths(s.get(_key(kind, "assistant"), "256"))
    else:
        spec["modes"] = tuple(s.get(_key(kind, "modes"), ["logits", "probs"]))
    notes: list[str] = []
    if lim is not None:
        spec["seeds"], notes = clamp_count("seeds", spec["seeds"], lim.max_seeds)
        spec["epochs"] = min(spec["epochs"], lim.max_epochs)
        spec["max_peers"] = lim.max_peers
    return spec, notes


def start(kind: str) -> None:
    st.session_state.pop(_key(kind, "error"), None)
    try:
        spec, notes = spec_from_inputs(kind)
        cat.config_from_spec(spec)  # refuse a bad request here, before a worker starts
        start_job(job_name(kind), {"fn": JOB_FN, "data": data_source(), "device": current_device(), **spec})
    except ValueError as err:
        st.session_state[_key(kind, "error")] = str(err)
        return
    st.session_state[_key(kind, "notes")] = notes


def inputs(kind: str) -> None:
    d = cat.config_from_spec({"kind": kind})
    c = st.columns(5)
    c[0].number_input("Seeds", 1, cat.MAX_SEEDS, d.seeds, key=_key(kind, "seeds"), help="3+ for honest error bars.")
    c[1].number_input("Epochs per network", 0.5, 50.0, float(d.epochs), step=1.0, key=_key(kind, "epochs"))
    c[2].text_input("Transfer set", d.transfer, key=_key(kind, "transfer"), help="subset:N, full, without:D, labelled:N")
    c[3].number_input("Temperature T", 0.5, 50.0, float(d.T), step=0.5, key=_key(kind, "T"), disabled=kind == "born-again")
    c[4].slider("alpha (weight of the distillation term)", 0.0, 1.0, float(d.alpha), step=0.05, key=_key(kind, "alpha"))
    c = st.columns(2)
    c[0].text_input("Student MLP hidden widths", ",".join(map(str, d.hidden)), key=_key(kind, "hidden"))
    if kind == "born-again":
        c[1].text_input("Temperature of each taught generation (comma-separated)", ", ".join(f"{t:g}" for t in d.temperatures),
                        key=_key(kind, "temps"), help=f"One per generation after 0; at most {cat.MAX_GENERATIONS - 1}.")
    elif kind == "mutual":
        c[1].number_input("Peers", 1, 6, d.peers, key=_key(kind, "peers"), help="2 to 4 (fewer on a shared server).")
    elif kind == "ta":
        c[1].text_input("Assistant MLP hidden widths", ",".join(map(str, d.assistant_hidden)), key=_key(kind, "assistant"))
    else:
        c[1].multiselect("How to combine the teachers", ["logits", "probs", "kl_mean"], list(d.modes), key=_key(kind, "modes"),
                         help="kl_mean moves the student exactly like probs (same gradient); its loss is a constant higher.")


def show_result(result: dict, kind: str) -> None:
    st.dataframe(figures.catalogue_table(result), hide_index=True, key=_key(kind, "table"))
    st.plotly_chart(figures.catalogue_bars(result), key=_key(kind, "bars"), theme=None)
    for note in result.get("notes", ()):
        st.markdown("- " + md_text(note))
    st.caption("Differences smaller than twice their standard error are marked *within noise*: not a finding.")


def draw(kind: str):
    def _draw(handle) -> None:
        if handle is None:
            st.caption("Press **Run** to train live; the table appears when every seed has finished.")
            return
        live.status_line(handle)
        runs = sorted(handle.runs)
        if runs:
            st.plotly_chart(live.figure(_key(kind, "acc"), handle, lambda: figures.accuracy_curves(
                {r: handle.evals(r) for r in runs}, title="Test accuracy (live: ≤2,000-image sample)")),
                key=_key(kind, "acc_chart"), theme=None)
        if handle.result:
            show_result(handle.result, kind)
    return _draw


def section(kind: str) -> None:
    st.markdown(INTRO[kind])
    inputs(kind)
    st.button("Run", key=_key(kind, "run"), type="primary", on_click=start, args=(kind,))
    if st.session_state.get(_key(kind, "error")):
        st.error(st.session_state[_key(kind, "error")])
    show_clamp_notes(st.session_state.get(_key(kind, "notes"), []))
    live.live_panel(job_name(kind), draw(kind))


st.title("Self-distillation & ensembles")
st.markdown("Born-again networks, deep mutual learning, teacher assistants and multi-teacher distillation, each "
            "**over seeds** (mean ± std), with differences smaller than twice their standard error marked **within noise**.")

def data_caption() -> str:
    """What the jobs will train on; a ValueError when the data set is unavailable."""
    bundle = get_bundle(data_source())
    return f"Data: {bundle.name} ({len(bundle.train):,} training images) · device: {current_device()}"


try:
    st.caption(data_caption())
except ValueError as err:
    st.error(f"Data set unavailable: {err}")
    st.stop()
for tab, kind in zip(st.tabs([cat.TITLES[k] for k in cat.KINDS]), cat.KINDS):
    with tab:
        section(kind)
