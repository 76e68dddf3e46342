"""Classroom lesson: a guided path through the labs, one step at a time (content: ``kdviz.interview.lesson``).

Previous / Next buttons come first in the tab order; the step is in the URL (``?step=3``), so a
lesson can be resumed or handed out; a bad value is refused with a warning and step 1 is shown.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from kdviz.interview.cards import PAGE_TITLES
from kdviz.interview.lesson import STEPS, get_step, step_count
from kdviz.ui.urlstate import sync_url, url_state

P = "lesson_"
SCHEMA = {"step": (int, 1, (1, step_count()))}
PAGES_DIR = Path(__file__).resolve().parent


def _move(delta: int) -> None:
    st.session_state[P + "step"] = min(max(1, st.session_state[P + "step"] + delta), step_count())


def open_page(page: str, params: dict[str, str]) -> None:
    """A link to the step's page with its prepared settings; a note when that page is not installed."""
    title = PAGE_TITLES.get(page, page)
    if not (PAGES_DIR / page).is_file():
        st.warning(f"The **{title}** page is not part of this installation.", icon=":material/link_off:")
        return
    try:
        st.page_link(f"app_pages/{page}", label=f"Open the {title}", icon=":material/open_in_new:", query_params=params or None)
    except Exception:  # run alone (AppTest, `streamlit run app_pages/lesson.py`): no navigation to link into
        query = "&".join(f"{k}={v}" for k, v in params.items())
        st.caption(f"Open the **{title}** page" + (f" with `?{query}`" if query else "") + ".")


def main() -> None:
    st.title(":material/co_present: Lesson: knowledge distillation in six steps")
    url_state(SCHEMA, P)  # ?step=abc or ?step=99: a warning naming it, and step 1
    n = st.session_state[P + "step"]
    c1, c2, c3 = st.columns([1, 1, 3], vertical_alignment="center")
    c1.button("Previous", key=P + "prev", icon=":material/arrow_back:", on_click=_move, args=(-1,), disabled=n <= 1,
              width="stretch")
    c2.button("Next", key=P + "next", icon=":material/arrow_forward:", on_click=_move, args=(1,), type="primary",
              disabled=n >= step_count(), width="stretch")
    c3.progress(n / step_count(), text=f"Step {n} of {step_count()}")
    step = get_step(n)
    st.header(f"{n}. {step.title}")
    st.markdown(f"**Say:** {step.say}")
    st.markdown(f"**Do:** {step.do}")
    open_page(step.page, step.params)
    with st.expander("All steps"):
        st.markdown("\n".join(f"{i}. {s.title} — {PAGE_TITLES.get(s.page, s.page)}" for i, s in enumerate(STEPS, start=1)))
    sync_url(SCHEMA, P)


main()
