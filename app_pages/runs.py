"""Saved runs: list and filter the runs on disk, overlay their curves, compare them in a table,
rename, delete, and download their metrics, config, weights and reproduce command.

Filters, the selected runs and the metric live in the URL, so a link opens the same comparison.
"""
from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from kdviz.figures import run_overlay
from kdviz.runs.access import can_change, owner_key
from kdviz.runs.store import ID_RE, RUN_KINDS, STUDENT_CHECKPOINTS, Run, RunError, RunStore, filter_runs
from kdviz.runs.tables import accuracy_summary, comparison_rows, curve_series, metric_names
from kdviz.ui.owner import owner_id, run_store
from kdviz.ui.text import md_text
from kdviz.ui.urlstate import sync_url, url_state
from kdviz.urlparams import Param

P = "runs_"  # session-state prefix of this page's settings
MAX_SELECTED = 8
MAX_LABELS = 200  # run labels remembered per session, to map a label the browser sends back to its id
SCHEMA = {
    "kind": (str, "all", ["all", *RUN_KINDS]),
    "q": (str, "", r"[^\x00-\x1f\x7f]{0,60}"),
    "sel": Param(list, (), pattern=ID_RE.pattern, max_items=MAX_SELECTED),
    "metric": (str, "", r"[A-Za-z0-9_.]{0,60}"),
}


# ----------------------------------------------------------------------------- actions (button callbacks)
def _flash(kind: str, text: str) -> None:
    st.session_state[P + "flash"] = (kind, text)


def _rename(root: str, run_id: str, owner: str | None) -> None:
    try:
        run = RunStore(root).rename(run_id, st.session_state.get(f"{P}name_{run_id}", ""), owner=owner)
        _flash("success", f"Renamed to “{md_text(run.name)}”.")
    except (RunError, OSError) as err:
        _flash("error", f"Could not rename: {md_text(err)}")
        return
    # The browser keeps the labels it showed and sends them back; setting the ids here makes the next
    # run send the new labels to it (select_runs also maps a stale label back to its id).
    st.session_state[P + "sel"] = list(st.session_state.get(P + "sel", []))


def _delete(root: str, run_id: str, owner: str | None) -> None:
    st.session_state.pop(P + "confirm", None)
    try:
        RunStore(root).delete(run_id, owner=owner)
        st.session_state[P + "sel"] = [i for i in st.session_state.get(P + "sel", []) if i != run_id]
        _flash("success", f"Deleted run {run_id}.")
    except (RunError, OSError) as err:
        _flash("error", f"Could not delete: {md_text(err)}")


def _publish(root: str, run_id: str, owner: str | None, published: bool) -> None:
    try:
        RunStore(root).publish(run_id, owner=owner, published=published)
        _flash("success", f"Run {run_id} is {'published: anyone with its link may view and download it' if published else 'private again'}.")
    except (RunError, OSError) as err:
        _flash("error", f"Could not change who sees the run: {md_text(err)}")


def _ask_delete(run_id: str | None) -> None:
    st.session_state[P + "confirm"] = run_id


# ----------------------------------------------------------------------------- sections
def show_flash() -> None:
    kind, text = st.session_state.pop(P + "flash", (None, None))
    if kind == "success":
        st.success(text)
    elif kind == "error":
        st.error(text)


def filters() -> tuple[str | None, str]:
    left, right = st.columns([1, 2])
    kind = left.selectbox("Kind", ["all", *RUN_KINDS], key=P + "kind")
    query = right.text_input("Name contains", key=P + "q", max_chars=60)
    return (None if kind == "all" else kind), query


def runs_table(runs: list[Run], owner: str | None) -> None:
    rows = [{"name": r.name, "kind": r.kind, "created (UTC)": r.created[:19].replace("T", " "),
             "test accuracy": accuracy_summary(r.final), "records": r.n_records, "id": r.id} for r in runs]
    if owner is not None:
        for row, run in zip(rows, runs):
            row["shared"] = _sharing(run, owner)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def selected_ids(chosen: list, known: dict, shown_labels: dict[str, str]) -> list[str]:
    """The selection as run ids. The browser sends back the labels it displayed, so after a rename
    it may send a label the options no longer have: ``shown_labels`` (label → id, this session) maps it back."""
    ids = [item if item in known else shown_labels.get(item, item) for item in chosen]
    return list(dict.fromkeys(str(i) for i in ids))


def select_runs(all_runs: list[Run], shown: list[Run]) -> list[str]:
    """Multiselect of runs; selected runs stay selectable when a filter hides them."""
    known = {r.id: r for r in all_runs}
    raw = list(st.session_state.get(P + "sel", []))
    chosen = selected_ids(raw, known, st.session_state.get(P + "labels", {}))
    gone = [i for i in chosen if i not in known]
    if gone:
        st.warning(md_text(f"{len(gone)} selected run(s): no such run (deleted, or not shared with you): {', '.join(gone)}"))
    if chosen != raw or gone:
        st.session_state[P + "sel"] = [i for i in chosen if i in known]
    options = list(dict.fromkeys([r.id for r in shown] + st.session_state[P + "sel"]))
    label = {i: f"{known[i].name} — {known[i].kind}, {known[i].created[:16].replace('T', ' ')}" for i in options}
    remembered = {**st.session_state.get(P + "labels", {}), **{text: i for i, text in label.items()}}
    st.session_state[P + "labels"] = dict(list(remembered.items())[-MAX_LABELS:])
    # the options' labels are shown as plain text by the widget, so the name needs no escaping here
    return st.multiselect("Runs to compare", options, format_func=lambda i: label.get(i, str(i)), key=P + "sel",
                          max_selections=MAX_SELECTED, placeholder="choose one or more runs")


def load_selected(store: RunStore, ids: list[str], owner: str | None) -> list[Run]:
    loaded = []
    for run_id in ids:
        try:
            loaded.append(store.load(run_id, owner=owner))
        except (RunError, OSError) as err:
            st.warning(f"Run {run_id} cannot be shown: {md_text(err)}")
    return loaded


def curves(runs: list[Run]) -> None:
    names = list(dict.fromkeys(m for r in runs for m in metric_names(r.records)))
    if not names:
        st.info("The selected runs have no per-step metrics to plot.")
        return
    wanted = st.session_state.get(P + "metric")
    if wanted not in names:
        if wanted:
            st.warning(f"Metric '{md_text(wanted)}' is not recorded by the selected runs; showing another one.")
        st.session_state[P + "metric"] = next((m for m in ("test_acc", "total") if m in names), names[0])
    left, right = st.columns([3, 1])
    metric = left.selectbox("Metric", names, key=P + "metric")
    log_y = right.checkbox("Log scale", key=P + "log", help="for losses")
    st.plotly_chart(run_overlay([s for run in runs for s in curve_series(run, metric)], metric, log_y=log_y),
                    width="stretch", theme=None)


def comparison(runs: list[Run]) -> None:
    only = st.checkbox("Only settings that differ", value=True, key=P + "differ", disabled=len(runs) < 2)
    rows = [{**row, "created": row["created"][:19].replace("T", " ")} for row in comparison_rows(runs, only_differing=only)]
    st.dataframe(pd.DataFrame(rows).astype(str), hide_index=True, width="stretch")


def checkpoint_order(run: Run) -> list[str]:
    return sorted(run.checkpoints, key=lambda n: (STUDENT_CHECKPOINTS.index(n) if n in STUDENT_CHECKPOINTS else 99, n))


def _sharing(run: Run, owner: str | None) -> str:
    mine = can_change(run.owner, owner_key(owner))
    return ("yours, published" if run.published else "yours, private") if mine else "published by another user"


def downloads(store: RunStore, run: Run, owner: str | None) -> None:
    st.caption("Downloads")
    names = checkpoint_order(run)
    cols = st.columns(max(4, 2 + len(names)))
    cols[0].download_button("Metrics CSV", store.export_csv(run.id, owner=owner), f"{run.id}-metrics.csv", "text/csv",
                            key=f"{P}csv_{run.id}", on_click="ignore", width="stretch")
    cols[1].download_button("Config JSON", store.export_config_json(run.id, owner=owner), f"{run.id}-config.json",
                            "application/json", key=f"{P}json_{run.id}", on_click="ignore", width="stretch")
    for col, name in zip(cols[2:], names):
        # the state_dict bytes are made only when clicked: loading a checkpoint needs torch
        col.download_button(f"{name} .pt", partial(store.weights_bytes, run.id, name, owner=owner), f"{run.id}-{name}.pt",
                            "application/octet-stream", key=f"{P}w_{run.id}_{name}", on_click="ignore", width="stretch",
                            help=f"{name} weights: torch.save(model.state_dict()); load with "
                                 "build_model(cfg).load_state_dict(torch.load(f, weights_only=True))")


def manage(store: RunStore, run: Run, owner: str | None) -> None:
    with st.expander(f"{md_text(run.name)}  ·  {run.kind}  ·  {run.id}", expanded=False):
        st.caption("Command line that reproduces this run (a file such as `teacher.pt` names this run's own copy of that checkpoint):")
        st.code(run.reproduce, language="bash", wrap_lines=True)
        downloads(store, run, owner)
        if not can_change(run.owner, owner_key(owner)):
            st.caption("Published by another user: you may view and download it, not change it.")
            return
        if owner is not None:
            publish_toggle(store, run, owner)
        left, right = st.columns([3, 1])
        left.text_input("New name", value=run.name, key=f"{P}name_{run.id}", max_chars=120)
        right.button("Rename", key=f"{P}rename_{run.id}", on_click=_rename, args=(str(store.root), run.id, owner))
        if st.session_state.get(P + "confirm") != run.id:
            st.button("Delete run…", key=f"{P}del_{run.id}", on_click=_ask_delete, args=(run.id,))
            return
        st.warning(f"Delete “{md_text(run.name)}” for good? Its metrics and checkpoints are removed from disk.")
        yes, no = st.columns(2)
        yes.button("Yes, delete", key=f"{P}yes_{run.id}", type="primary", on_click=_delete, args=(str(store.root), run.id, owner))
        no.button("Cancel", key=f"{P}no_{run.id}", on_click=_ask_delete, args=(None,))


def publish_toggle(store: RunStore, run: Run, owner: str) -> None:
    if run.published:
        st.button("Make private", key=f"{P}unpub_{run.id}", on_click=_publish, args=(str(store.root), run.id, owner, False),
                  help="Only you will see it again; others who opened it lose access.")
    else:
        st.button("Publish", key=f"{P}pub_{run.id}", on_click=_publish, args=(str(store.root), run.id, owner, True),
                  help="Anyone with the link (Copy the address bar) may then view and download it, never change it.")


# ----------------------------------------------------------------------------- page
def main() -> None:
    st.title("Saved runs")
    store, owner = run_store(), owner_id()
    if owner is None:
        st.caption(f"Runs folder: `{store.root}` (set `KDVIZ_RUNS_DIR` to use another). Copy the address bar to share this view.")
    else:
        st.caption("Your runs are private to this browser until you publish them; a shared link shows others only published runs.")
    show_flash()
    url_state(SCHEMA, P)
    kind, query = filters()
    listing = store.list(owner=owner)
    for warning in listing.warnings:
        st.warning(md_text(warning))  # names folders found on disk
    shown = filter_runs(listing.runs, kind, query)
    if not listing.runs:
        st.info("No saved runs yet. Use “Save run” on the Teacher, Distill or Experiments pages.")
    elif shown:
        runs_table(shown, owner)
    else:
        st.info("No run matches the filters.")
    selected = load_selected(store, select_runs(listing.runs, shown), owner) if listing.runs else []
    if selected:
        st.subheader("Curves")
        curves(selected)
        st.subheader("Comparison")
        comparison(selected)
        st.subheader("Manage and export")
        for run in selected:
            manage(store, run, owner)
    sync_url(SCHEMA, P)


main()
