"""Lesson page (app_pages/lesson.py) through AppTest: next/previous, the step in the URL, bad values refused."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptools import rendered

from kdviz.interview.lesson import STEPS, get_step

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "lesson.py"


def page(**query) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=30)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def header(at) -> str:
    return at.header[0].value


def test_next_and_previous_walk_the_steps_and_the_url_follows():
    at = page()
    assert not at.exception and header(at) == f"1. {STEPS[0].title}"
    assert at.button(key="lesson_prev").disabled
    for n in range(2, len(STEPS) + 1):
        at.button(key="lesson_next").click().run()
        assert header(at) == f"{n}. {STEPS[n - 1].title}"
        assert at.query_params["step"] == str(n)
    assert at.button(key="lesson_next").disabled
    at.button(key="lesson_prev").click().run()
    assert header(at) == f"{len(STEPS) - 1}. {STEPS[-2].title}" and at.query_params["step"] == str(len(STEPS) - 1)
    assert STEPS[-2].say in "\n".join(m.value for m in at.markdown)


def test_step_in_the_url_resumes_the_lesson():
    at = page(step="4")
    assert header(at) == f"4. {STEPS[3].title}" and not at.warning


@pytest.mark.parametrize("bad", ["abc", "0", "99", "2.5", "-1"])
def test_bad_step_is_refused_with_a_warning(bad):
    at = page(step=bad)
    assert not at.exception
    assert header(at) == f"1. {STEPS[0].title}"
    assert any(f"'step={bad}'" in rendered(w.value) and f"from 1 to {len(STEPS)}" in rendered(w.value) for w in at.warning)


def test_get_step_refuses_out_of_range():
    n = len(STEPS)
    with pytest.raises(ValueError, match=f"from 1 to {n}, got {n + 1}"):
        get_step(n + 1)


def test_every_step_links_to_a_page_in_the_navigation():
    """Each step's page is in app.py's navigation and exists, except lm.py, which the language-model branch adds."""
    app = (ROOT / "app.py").read_text()
    for step in STEPS:
        if step.page == "lm.py" and not (ROOT / "app_pages" / "lm.py").is_file():
            continue  # expected after the merge: app_pages/lm.py, url path "lm"
        assert f'("{step.page}"' in app and (ROOT / "app_pages" / step.page).is_file(), step.page
    assert [s.page for s in STEPS if s.page == "lm.py"] == ["lm.py"]
