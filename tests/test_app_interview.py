"""Interview prep page (pages/interview.py): alone through AppTest, and inside app.py's navigation."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

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


def test_renders_alone_with_all_questions(env):
    at = AppTest.from_file(str(PAGE)).run()
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert len(labels) >= 12
    for topic in REQUIRED:
        assert any(topic.lower() in label.lower() for label in labels), topic
    # alone there is no navigation: links degrade to captions instead of failing
    assert sum("See it live" in c.value for c in at.caption) >= 12


def test_filter_and_topics(env):
    at = AppTest.from_file(str(PAGE)).run()
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
    at.switch_page("app_pages/interview.py").run()  # before the first run: no other page is rendered
    assert not at.exception, at.exception
    links = [p.value for p in at.get("page_link")]
    assert "See it live: Temperature lab" in links and "See it live: Feature maps" in links
