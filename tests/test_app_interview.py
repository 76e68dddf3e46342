"""Interview prep page (app_pages/interview.py): spot the bug, run both, the quiz, the cards and their links."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdviz.interview.bugs import get_bug
from kdviz.interview.cards import CARDS
from kdviz.interview.quiz import get_question

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "interview.py"
REQUIRED = ["Why divide the logits by a temperature", "Why is the soft-target loss multiplied by T²",
            "Why log_softmax", "What does alpha mean", "Can a student beat its teacher", "What must match",
            "Feature distillation vs logit distillation", "dark knowledge", "Why cache the teacher",
            "DKD", "born-again", "mutual learning", "unlabelled data", "language models"]


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("KDVIZ_DATA_SOURCE", "synthetic")
    monkeypatch.delenv("KDVIZ_HOSTED", raising=False)


def page(**query) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


# ----------------------------------------------------------------------------- spot the bug
def test_find_a_bug_wrong_then_right(env):
    at = page(bug="missing_t2")
    bug = get_bug("missing_t2")
    assert at.code[0].value.rstrip() == bug.snippet.rstrip() and len(at.code) == 1  # the fix stays hidden
    at.button(key="iv_check").click().run()
    assert "Pick a line number first" in texts(at.info)
    wrong = next(i for i in range(1, 13) if i not in bug.answer_lines)
    at.radio(key="iv_line_missing_t2").set_value(wrong).run()
    at.button(key="iv_check").click().run()
    assert f"Not line {wrong}" in texts(at.error) and len(at.code) == 1
    at.radio(key="iv_line_missing_t2").set_value(bug.answer_lines[-1]).run()
    at.button(key="iv_check").click().run()
    assert "Right: the bug is on lines" in texts(at.success) and "T²" in texts(at.success)
    assert len(at.code) == 2 and "kd_loss(" in at.code[1].value
    assert at.query_params["bug"] == "missing_t2"


def test_reveal_and_switch_snippet(env):
    at = page()
    at.selectbox(key="iv_bug").set_value("swapped_kl").run()
    assert at.code[0].value.rstrip() == get_bug("swapped_kl").snippet.rstrip() and at.query_params["bug"] == "swapped_kl"
    at.button(key="iv_reveal").click().run()
    assert "reverse KL" in texts(at.info) and len(at.code) == 2


def test_run_both_pressed_twenty_times_queues_one_job(no_spawn):
    at = page(bug="alpha_swapped")
    at.slider(key="iv_steps").set_value(5).run()
    for _ in range(20):
        at.button(key="iv_run").click().run()
    jobs = no_spawn.jobs()
    assert len(jobs) == 1 and jobs[0].spec["bug"] == "alpha_swapped" and jobs[0].spec["steps"] == 5
    assert jobs[0].spec["fn"] == "kdviz.interview.runner:run_both_job"
    assert "Already running" in texts(at.caption)


def test_run_both_trains_and_shows_the_difference(app_env, tick):
    at = page(bug="missing_t2")
    at.slider(key="iv_steps").set_value(5).run()
    at.button(key="iv_run").click().run()
    tick(at, lambda a: len(a.get("arrow_data_frame")) > 0 or len(a.dataframe) > 0, timeout=120)
    assert len(at.get("plotly_chart")) == 3
    table = at.dataframe[0].value
    assert list(table["run"]) == ["buggy step", "fixed step"] and list(table["steps"]) == [5, 5]
    assert table["mean gradient norm"][0] < table["mean gradient norm"][1]  # no T²: 16× weaker soft pull


# ----------------------------------------------------------------------------- quiz
def test_quiz_round_keeps_a_score_and_drills_what_was_missed(env):
    at = page(mode="quiz", q="p1_T4")
    right = get_question("p1_T4").answer()
    at.text_input(key="iv_ans_p1_T4").set_value(f"{right:.3f}").run()
    at.button(key="iv_answer").click().run()
    assert "Correct" in texts(at.success)
    assert [m.value for m in at.metric if m.label == "Score"] == ["1 / 1"]
    at.button(key="iv_next").click().run()
    assert at.selectbox(key="iv_q").value == "p0_T1" and at.query_params["q"] == "p0_T1"
    at.text_input(key="iv_ans_p0_T1").set_value("0.9").run()
    at.button(key="iv_answer").click().run()
    assert "Not quite" in texts(at.error)
    assert [m.value for m in at.metric if m.label == "Score"] == ["1 / 2"]
    assert "Topics to revisit: temperature" in texts(at.info)
    at.button(key="iv_next").click().run()  # move on, then drill: only the missed question is asked
    at.toggle(key="iv_drill").set_value(True).run()
    assert at.selectbox(key="iv_q").options == ["1. p0_T1"] and at.selectbox(key="iv_q").value == "p0_T1"
    at.text_input(key="iv_ans_p0_T1").set_value(f"{get_question('p0_T1').answer():.4f}").run()
    at.button(key="iv_answer").click().run()
    assert [m.value for m in at.metric if m.label == "Score"] == ["2 / 2"]
    assert "nothing to drill" in texts(at.success)


def test_choice_question(env):
    at = page(mode="quiz", q="alpha_zero")
    at.button(key="iv_answer").click().run()
    assert "pick one of the 3 choices" in texts(at.warning)
    at.radio(key="iv_ans_alpha_zero").set_value(1).run()
    at.button(key="iv_answer").click().run()
    assert "plain training on the labels" in texts(at.error)


@pytest.mark.parametrize("answer", ["abc", "", "nan", "1,5"])
def test_non_number_answer_gets_a_message(env, answer):
    at = page(mode="quiz", q="kd_example")
    at.text_input(key="iv_ans_kd_example").set_value(answer).run()
    at.button(key="iv_answer").click().run()
    assert not at.exception and "Could not grade that" in texts(at.warning)
    assert [m.value for m in at.metric if m.label == "Score"] == ["0 / 0"]


@pytest.mark.parametrize("name, value", [("q", "nope"), ("bug", "nope"), ("mode", "zzz")])
def test_unknown_ids_in_the_url_get_a_message(env, name, value):
    at = page(**{"mode": "quiz" if name == "q" else "bugs", name: value})
    assert any(f"'{name}={value}' was ignored" in w.value for w in at.warning)


# ----------------------------------------------------------------------------- cards
def test_cards_render_alone_with_all_questions(env):
    at = page(mode="cards")
    labels = [e.label for e in at.expander]
    assert len(labels) == len(CARDS)
    for topic in REQUIRED:
        assert any(topic.lower() in label.lower() for label in labels), topic
    # alone there is no navigation: links degrade to captions instead of failing
    assert sum("See it live" in c.value for c in at.caption) >= 12


def test_filter_and_topics(env):
    at = page(mode="cards")
    at.text_input(key="iv_filter").set_value("MiniLLM").run()
    assert [e.label for e in at.expander] == ["**1. How does KD work for language models?**"]
    at.text_input(key="iv_filter").set_value("zzz-no-match").run()
    assert not at.expander and "No question matches" in at.info[0].value
    at.text_input(key="iv_filter").set_value("").run()
    at.multiselect(key="iv_topics").set_value(["temperature"]).run()
    assert 0 < len(at.expander) < 16


def test_page_links_work_inside_the_app(env, monkeypatch, tmp_path):
    monkeypatch.setenv("KDVIZ_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["mode"] = "cards"
    at.switch_page("app_pages/interview.py").run()  # before the first run: no other page is rendered
    assert not at.exception, at.exception
    links = [p.value for p in at.get("page_link")]
    assert "See it live: Temperature lab" in links and "See it live: Feature maps" in links


def card_targets() -> dict[str, set[str]]:
    targets: dict[str, set[str]] = {}
    for card in CARDS:
        for page_file, key in card.links:
            targets.setdefault(page_file, set()).add(key)
    return targets


@pytest.mark.parametrize("page_file", sorted(card_targets()))
def test_every_see_it_live_link_shows_its_element(app_env, page_file):
    """Each linked page is in app.py's navigation and, run alone, renders the widget the card names."""
    assert f'("{page_file}"' in (ROOT / "app.py").read_text()
    at = AppTest.from_file(str(ROOT / "app_pages" / page_file), default_timeout=120).run()
    assert not at.exception, at.exception
    for key in card_targets()[page_file] - {""}:
        assert key in at.session_state, (page_file, key)
