"""Interview prep: spot the bug in real distillation code (and run both versions), a self-graded quiz,
and the question cards. The content lives in ``kdviz.interview`` (no Streamlit); this page only draws it.

The section, the bug and the question are in the URL (``?mode=quiz&q=p1_T4``, ``?bug=swapped_kl``);
unknown ids are refused with a warning.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from kdviz.interview import bugs, quiz
from kdviz.interview.cards import CARDS, PAGE_TITLES, matches
from kdviz.figures.interview import METRICS, run_both_figure
from kdviz.ui import live
from kdviz.ui.frame import current_device, data_source
from kdviz.ui.jobs import get_job, show_start_error, start_job_or_keep_error
from kdviz.ui.urlstate import sync_url, url_state

P, JOB = "iv_", "interview"
PAGES_DIR = Path(__file__).resolve().parent
MODES = {"bugs": "Spot the bug", "quiz": "Quiz", "cards": "Question cards"}
SCHEMA = {"mode": (str, "bugs", list(MODES)), "bug": (str, bugs.BUG_IDS[0], list(bugs.BUG_IDS)),
          "q": (str, quiz.QUESTION_IDS[0], list(quiz.QUESTION_IDS))}
STEPS_RANGE, STEPS_DEFAULT = (5, 400), 120
RUN_LABELS = {"buggy": "buggy step", "fixed": "fixed step"}


# ----------------------------------------------------------------------------- spot the bug
def _check(bug: bugs.Bug) -> None:
    line = st.session_state.get(f"{P}line_{bug.id}")
    if line is None:
        st.session_state[f"{P}verdict_{bug.id}"] = ("info", "Pick a line number first.")
        return
    verdict = bugs.check_line(bug, int(line))
    st.session_state[f"{P}verdict_{bug.id}"] = ("ok" if verdict.correct else "no", verdict.message)
    if verdict.correct:
        st.session_state[f"{P}solved_{bug.id}"] = True


def _reveal(bug: bugs.Bug) -> None:
    st.session_state[f"{P}solved_{bug.id}"] = True
    st.session_state[f"{P}verdict_{bug.id}"] = ("info", f"The answer: line(s) {', '.join(map(str, bug.answer_lines))}. "
                                                 + bug.explanation)


def _run_both(bug: bugs.Bug) -> None:
    """Start the comparison; pressing again while it runs for this bug does nothing (no second queue entry)."""
    handle = get_job(JOB)
    if handle is not None and handle.active and handle.spec.get("bug") == bug.id:
        st.session_state[P + "run_note"] = "Already running — the charts below update live."
        return
    st.session_state.pop(P + "run_note", None)
    start_job_or_keep_error(JOB, {"fn": "kdviz.interview.runner:run_both_job", "bug": bug.id,
                                  "steps": int(st.session_state[P + "steps"]), "data": data_source(), "device": current_device()})


def spot_the_bug() -> None:
    bug = bugs.get_bug(st.selectbox("Snippet", bugs.BUG_IDS, key=P + "bug", format_func=lambda b: bugs.get_bug(b).title))
    st.markdown("One training step of knowledge distillation, with **one** classic bug. Which line is wrong?")
    st.code(bug.snippet, language="python", line_numbers=True)
    lines = list(range(1, len(bug.snippet.splitlines()) + 1))
    st.radio("The wrong line", lines, index=None, horizontal=True, key=f"{P}line_{bug.id}")
    c1, c2 = st.columns(2)
    c1.button("Check my line", key=P + "check", type="primary", on_click=_check, args=(bug,), width="stretch")
    c2.button("Show the answer", key=P + "reveal", on_click=_reveal, args=(bug,), width="stretch")
    kind, message = st.session_state.get(f"{P}verdict_{bug.id}", (None, ""))
    {"ok": st.success, "no": st.error, "info": st.info}.get(kind, lambda *_: None)(message)
    if st.session_state.get(f"{P}solved_{bug.id}"):
        st.markdown("**The fix** (it calls `kdviz.losses.kd_loss` / `ce_loss`):")
        st.code(bug.fixed_snippet, language="python", line_numbers=True, wrap_lines=True)
    run_both_controls(bug)


def run_both_controls(bug: bugs.Bug) -> None:
    st.subheader("Run both")
    st.caption(f"Trains the same small student twice on MNIST, from the same weights and batches: once with the buggy "
               f"step above, once with the fixed one. What to look for: {bug.effect}.")
    st.session_state.setdefault(P + "steps", STEPS_DEFAULT)
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.slider("Steps per run", *STEPS_RANGE, step=5, key=P + "steps")
    c2.button("Run both", key=P + "run", type="primary", on_click=_run_both, args=(bug,), width="stretch",
              icon=":material/play_arrow:")
    handle = get_job(JOB)
    if st.session_state.get(P + "run_note") and handle is not None and handle.active:
        st.caption(st.session_state[P + "run_note"])
    show_start_error(JOB)
    live.live_panel(JOB, draw_run_both)


def draw_run_both(handle) -> None:
    if handle is None:
        st.caption("Press **Run both**: loss, gradient norm and accuracy of both runs appear here live.")
        return
    st.caption(f"Snippet: **{bugs.get_bug(handle.spec['bug']).title}**")
    live.status_line(handle)
    live.progress(handle, handle.spec.get("steps"))
    runs = {name: handle.records(name) for name in RUN_LABELS}
    cols = st.columns(len(METRICS))
    for col, metric in zip(cols, METRICS):
        col.plotly_chart(live.figure(f"iv_{metric}", handle, lambda m=metric: run_both_figure(runs, m)),
                         key=f"iv_chart_{metric}", theme=None)
    if handle.result:
        rows = [{"run": RUN_LABELS[name], "final loss": r["final_loss"], "test accuracy": r["final_test_acc"],
                 "mean gradient norm": r["mean_grad_norm"],
                 "NaN/inf": f"at step {r['nonfinite_step']}" if r["nonfinite_step"] else "none", "steps": r["steps"]}
                for name, r in handle.result["runs"].items()]
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="iv_result_table")


# ----------------------------------------------------------------------------- quiz
def tally() -> quiz.Tally:
    return st.session_state.setdefault(P + "tally", quiz.Tally())


def _answer(q: quiz.Question) -> None:
    given = st.session_state.get(f"{P}ans_{q.id}")
    try:
        verdict = quiz.grade(q, given if not q.numeric else (given or ""))
    except ValueError as err:
        st.session_state[f"{P}qmsg_{q.id}"] = ("warn", f"Could not grade that: {err}.")
        return
    tally().record(q, verdict.correct)
    st.session_state[f"{P}qmsg_{q.id}"] = ("ok" if verdict.correct else "no", verdict.message)


def _next(order: list[str]) -> None:
    current = st.session_state[P + "q"]
    later = order[order.index(current) + 1:] if current in order else order
    st.session_state[P + "q"] = (later or order)[0]


def quiz_section() -> None:
    t = tally()
    right, answered = t.score()
    c1, c2, c3 = st.columns(3)
    c1.metric("Score", f"{right} / {answered}", help="Right answers / questions answered (your latest answer counts).")
    c2.metric("Questions", len(quiz.QUESTIONS))
    drill = c3.toggle("Drill me: only what I missed", key=P + "drill")
    if t.topics_to_revisit():
        st.info("Topics to revisit: " + ", ".join(t.topics_to_revisit()), icon=":material/replay:")
    order = quiz.drill_order(t) if drill else list(quiz.QUESTION_IDS)
    if not order:
        st.success("Nothing missed so far — nothing to drill. Turn drill mode off to keep going.")
        return
    if st.session_state[P + "q"] not in order:
        st.session_state[P + "q"] = order[0]
    q = quiz.get_question(st.selectbox("Question", order, key=P + "q", format_func=lambda i: f"{order.index(i) + 1}. {i}"))
    st.markdown(f"**{q.prompt}**")
    if q.numeric:
        st.text_input("Your answer (a number)", key=f"{P}ans_{q.id}", placeholder="e.g. 0.25")
    else:
        st.radio("Your answer", range(len(q.choices)), index=None, key=f"{P}ans_{q.id}", format_func=lambda i: q.choices[i])
    c1, c2 = st.columns(2)
    c1.button("Check answer", key=P + "answer", type="primary", on_click=_answer, args=(q,), width="stretch")
    c2.button("Next question", key=P + "next", on_click=_next, args=(order,), width="stretch")
    kind, message = st.session_state.get(f"{P}qmsg_{q.id}", (None, ""))
    {"ok": st.success, "no": st.error, "warn": st.warning}.get(kind, lambda *_: None)(message)
    if q.see in PAGE_TITLES and kind in ("ok", "no"):
        page_link(q.see, f"See it live: {PAGE_TITLES[q.see]}")


# ----------------------------------------------------------------------------- cards
def page_link(page: str, label: str) -> None:
    """Link to a page that exists. Run alone (e.g. in AppTest) there is no navigation: a caption instead."""
    if not (PAGES_DIR / page).is_file():
        return
    try:
        st.page_link(f"app_pages/{page}", label=label, icon=":material/play_circle:")
    except Exception:  # StreamlitPageNotFoundError etc.: this page is not part of a multipage app
        st.caption(f"{label} (open the **{PAGE_TITLES.get(page, page)}** page).")


def cards_section() -> None:
    st.caption("Answer out loud first, then open the card. Each answer links to the page where the idea happens.")
    c1, c2, c3 = st.columns([3, 2, 1])
    query = c1.text_input("Filter", placeholder="e.g. T², cache, LLM", key="iv_filter")
    topics = c2.multiselect("Topics", sorted({c.topic for c in CARDS}), key="iv_topics")
    show_all = c3.toggle("Open all", key="iv_open_all")
    shown = [c for c in CARDS if matches(c, query) and (not topics or c.topic in topics)]
    st.caption(f"{len(shown)} of {len(CARDS)} questions")
    for i, card in enumerate(shown, start=1):
        with st.expander(f"**{i}. {card.question}**", expanded=show_all):
            st.markdown(card.answer)
            for page in dict.fromkeys(page for page, _ in card.links):
                page_link(page, f"See it live: {PAGE_TITLES.get(page, page)}")
    if not shown:
        st.info("No question matches that filter.")


def main() -> None:
    st.title(":material/quiz: Interview prep")
    url_state(SCHEMA, P)  # unknown ?bug= / ?q= / ?mode= values: a warning naming them, and the default
    mode = st.radio("Section", list(MODES), key=P + "mode", horizontal=True, format_func=MODES.get,
                    label_visibility="collapsed")
    {"bugs": spot_the_bug, "quiz": quiz_section, "cards": cards_section}[mode]()
    sync_url(SCHEMA, P)


main()
