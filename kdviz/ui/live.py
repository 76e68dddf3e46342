"""Live job display: control buttons and a fragment that re-polls its job (protocol: ``kdviz/runtime/protocol.py``).

::

    controls("teacher", on_start=start_teacher)      # buttons teacher_start/_pause/_resume/_step/_stop/_reset
    live_panel("teacher", draw)                      # draw(handle) in a fragment: every 0.4 s running, 4 s queued

All state lives in the session's :class:`~kdviz.ui.jobs.JobHandle`, never in page locals, so
leaving the page and coming back shows the same run and curves. The fragment ticks only while
the job is queued/running/paused; when it ends the fragment triggers one full rerun (so the
rest of the page, e.g. results and buttons, redraws) and stops ticking.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import streamlit as st

from kdviz.ui.jobs import JobHandle, forget_job, get_job
from kdviz.ui.text import md_text

REFRESH_S = 0.4  # ≥ 2 redraws a second even when a redraw itself takes a while (0.5 gave 1.99/s measured)
# A queued job has nothing new to draw but its queue position: polling it 8× less often keeps a
# server with many waiting sessions (the hosted playground's queue) free for the running ones.
QUEUED_REFRESH_S = 4.0
# While a job runs, its charts are rebuilt at most once a second; the step counter, progress bar and
# status line still refresh every REFRESH_S. Measured (bench/app_live.py, Teacher page, 2 charts, local
# Chromium on the same 2 cores): redrawing both charts on every 0.4 s tick took 0.16 of a core in the
# server and 0.43 in the browser, and the training worker kept only 58-69 % of its headless speed;
# with no charts it kept 95 % (82 % in one 2.5-minute run on 2026-11-30). An unchanged figure is not
# drawn again (the browser compares its JSON); sending the charts from a fragment of their own once a
# second, instead of on every tick, saved no CPU that bench/app_live.py could see (docs/live-training.md).
# A paused or finished job's charts are rebuilt at once (Step shows its record).
CHART_REFRESH_S = 1.0


def _act(name: str, action: str) -> None:
    handle = get_job(name)
    if handle is not None:
        getattr(handle, action)()


def stop_job(name: str) -> None:
    """Button callback: stop this session's job ``name`` (curves kept); nothing when there is none."""
    _act(name, "stop")


def controls(name: str, on_start: Callable[[], None], prefix: str | None = None) -> None:
    """Start / Pause / Resume / Step / Stop / Reset. Keys: ``{prefix}_start`` etc. (prefix defaults to name)."""
    prefix = prefix or name
    handle = get_job(name)
    state = handle.state if handle is not None else None
    live = state in ("running", "paused")
    cols = st.columns(6)
    cols[0].button("Start", key=f"{prefix}_start", type="primary", on_click=on_start, width="stretch",
                   help="Start a new run with these settings (a run in progress is stopped first).")
    cols[1].button("Pause", key=f"{prefix}_pause", disabled=state != "running", width="stretch",
                   on_click=_act, args=(name, "pause"))
    cols[2].button("Resume", key=f"{prefix}_resume", disabled=state != "paused", width="stretch",
                   on_click=_act, args=(name, "resume"))
    cols[3].button("Step", key=f"{prefix}_step", disabled=not live, width="stretch", on_click=_act,
                   args=(name, "step_once"), help="Run until the next logged record, then pause.")
    cols[4].button("Stop", key=f"{prefix}_stop", disabled=not (handle and handle.active), width="stretch",
                   on_click=_act, args=(name, "stop"), help="Stop and keep the curves so far.")
    cols[5].button("Reset", key=f"{prefix}_reset", disabled=handle is None, width="stretch",
                   on_click=forget_job, args=(name,), help="Stop and clear the curves.")


def status_line(handle: JobHandle) -> None:
    """One coloured line saying what the job is doing."""
    if handle.state == "queued":
        st.info(f"Queued — position {handle.position} in line; it starts as soon as a training slot frees up.", icon=":material/hourglass_top:")
    elif handle.state == "running":
        st.caption(f"● running — {handle.status}")
    elif handle.state == "paused":
        st.warning(f"Paused at step {handle.step():,}. Resume, or Step one record at a time.", icon=":material/pause_circle:")
    elif handle.state == "error":
        st.error(handle.error or "the job failed", icon=":material/error:")
    elif handle.state == "stopped":
        st.warning(f"Stopped at step {handle.step():,} ({handle.status}). The curves so far are kept.", icon=":material/stop_circle:")
    else:
        st.success("Finished.", icon=":material/check_circle:")


def still_drawing(handle: JobHandle | None) -> bool:
    """The status line of a live job; False when there is no job or it is done (the page then draws the result)."""
    if handle is None:
        return False
    status_line(handle)
    return handle.state != "done"


def progress(handle: JobHandle, total_steps: int | None, run: str | None = None) -> None:
    """The step counter (an ``st.metric`` labelled "Step"), throughput and a progress bar."""
    step = handle.step(run)
    last = max((log.last for log in handle.runs.values() if log.last), key=lambda r: r["step"], default=None)
    c1, c2, c3 = st.columns(3)
    c1.metric("Step", f"{step:,}" + (f" / {total_steps:,}" if total_steps else ""))
    c2.metric("Epoch", f"{last['epoch']:.2f}" if last else "–")
    rate, help_text = images_per_s(last, handle.active)
    c3.metric("Images / s", f"{rate:,.0f}" if rate is not None else "–", help=help_text)
    if total_steps:
        st.progress(min(1.0, step / total_steps))


def images_per_s(last: dict | None, active: bool) -> tuple[float | None, str]:
    """The throughput to show, and what it means: while the job runs, the rate since the previous
    record; once it has ended, the run's average (images over elapsed time, evaluations included),
    where the record counts its images (a single last window says little: it holds the final evaluation)."""
    if not last:
        return None, "Images trained on per second."
    if active or not last.get("samples") or not last.get("elapsed_s"):
        return last["samples_per_s"], "Images trained on per second, since the previous update."
    return last["samples"] / last["elapsed_s"], "Average over the whole run: images trained on ÷ seconds since the first step (test evaluations included)."


def figure(key: str, handle: JobHandle, build: Callable[[], Any], *extra) -> Any:
    """The chart ``build()`` makes, rebuilt only when new events arrived (or ``extra`` changed),
    and while the job runs at most every ``CHART_REFRESH_S``.

    Reusing the last figure skips Plotly's slow figure construction (~25 ms per chart, far more
    under load) and the browser's redraw (the same JSON is not drawn again).
    """
    version, now = (handle.id, handle.events_seen, extra), time.monotonic()
    slot = st.session_state.get(f"_kdviz_fig_{key}")
    recent = (slot is not None and handle.state == "running" and slot[0][0] == handle.id and slot[0][2] == extra
              and now - slot[2] < CHART_REFRESH_S)
    if slot is None or (slot[0] != version and not recent):
        slot = (version, build(), now)
        st.session_state[f"_kdviz_fig_{key}"] = slot
    return slot[1]


def _tick_rate(name: str) -> tuple[float | None, int]:
    """Fragment runs per second over the last few seconds (the refresh rate the user sees), and
    how many updates this session's live view has had (a counter the browser can read: two reads
    some seconds apart give the refresh rate as the browser saw it; bench/app_live.py does that)."""
    times = st.session_state.setdefault(f"_live_ticks_{name}", deque(maxlen=20))
    times.append(time.monotonic())
    count = st.session_state[f"_live_count_{name}"] = st.session_state.get(f"_live_count_{name}", 0) + 1
    if len(times) < 3 or times[-1] - times[0] <= 0:
        return None, count
    return (len(times) - 1) / (times[-1] - times[0]), count


def live_panel(name: str, draw: Callable[[JobHandle | None], None], interval: float = REFRESH_S) -> None:
    """``draw(handle)`` in a fragment re-run every ``interval`` s while the job is active
    (every ``QUEUED_REFRESH_S`` while it waits in the queue)."""
    handle = get_job(name)
    was_active = handle is not None and handle.active
    was_queued = was_active and handle.state == "queued"
    every = max(interval, QUEUED_REFRESH_S) if was_queued else interval

    @st.fragment(run_every=every if was_active else None)
    def _panel() -> None:
        t0 = time.perf_counter()
        current = get_job(name)
        if current is not None:
            current.poll()
        draw(current)
        if current is not None and current.active:
            (rate, count), ms = _tick_rate(name), 1000 * (time.perf_counter() - t0)
            parts = ([f"measured {rate:.1f} updates/s"] if rate else []) + [f"{ms:.0f} ms per redraw"]
            st.caption(f"live view: every {every:g} s, charts every {max(every, CHART_REFRESH_S):g} s "
                       f"({', '.join(parts)}) · update {count}")
        if was_active and (current is None or not current.active):
            st.rerun()  # finished: redraw the whole page once, and stop ticking
        if was_queued and current is not None and current.state != "queued":
            st.rerun()  # it started: redraw the page once, and tick at the running rate
        if not was_active and current is not None and current.active:
            # started by a button inside this fragment ("Run the next seed"): a fragment rerun keeps the
            # run_every it was defined with (none), so without a full rerun the panel would never tick again
            st.rerun()

    _panel()


def _save(name: str, kind: str, prefix: str, owner: str | None) -> None:
    from kdviz.runs.store import AlreadySaved, save_job_result
    from kdviz.ui.owner import run_store

    handle = get_job(name)
    if handle is None or handle.result is None:
        return
    records = [r for run in handle.runs for r in handle.records(run)]
    spec = {k: v for k, v in handle.spec.items() if k not in ("ui", "out_dir")}
    source = f"job-{handle.owner}-{handle.id}"  # this session's job: saving it again is a no-op
    try:
        run = save_job_result(run_store(), kind, st.session_state.get(f"{prefix}_save_name") or kind, spec, records,
                              handle.result, owner=owner, source=source)
    except AlreadySaved as err:
        st.session_state[f"{prefix}_save_msg"] = ("ok", f"This run is {md_text(err)} — see the Saved runs page.")
        return
    except (ValueError, OSError) as err:
        st.session_state[f"{prefix}_save_msg"] = ("error", f"Could not save the run: {md_text(err)}")
        return
    st.session_state[f"{prefix}_save_msg"] = ("ok", f"Saved as “{md_text(run.name)}” (id {run.id}) — see the Saved runs page.")


def save_controls(name: str, kind: str, prefix: str | None = None) -> None:
    """A name box and a Save button (``{prefix}_save_name``, ``{prefix}_save``) for a finished run.

    In hosted mode the run belongs to this browser (``kdviz.ui.owner``) and the per-user caps apply:
    the button says when one is reached."""
    from kdviz.ui.owner import owner_id, run_store

    prefix = prefix or name
    owner, store = owner_id(), run_store()
    full = None
    if owner is not None and store.quota is not None:
        n, size = store.usage(owner)
        full = n >= store.quota.max_runs or size >= store.quota.max_bytes
        st.caption(f"Your saved runs: {n} of {store.quota.max_runs}, {size / 1e6:.1f} of {store.quota.max_bytes / 1e6:.0f} MB"
                   + (" — the cap is reached: delete a run on the Saved runs page to save another." if full else "."))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.text_input("Run name", value=f"{kind} run", key=f"{prefix}_save_name")
    c2.button("Save run", key=f"{prefix}_save", on_click=_save, args=(name, kind, prefix, owner), width="stretch",
              disabled=bool(full), help="Keep the settings, curves, final metrics and checkpoints in the run store.")
    msg = st.session_state.get(f"{prefix}_save_msg")
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])
