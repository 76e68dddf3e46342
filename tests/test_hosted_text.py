"""md_text: a user string inside Markdown renders as exactly its characters, checked with an
independent CommonMark renderer (markdown-it-py) rather than against the escaping rule itself."""
from __future__ import annotations

import random
import re
import string

import pytest
from markdown_it import MarkdownIt

from apptools import rendered
from kdviz.ui.text import md_text

RENDERER = MarkdownIt("commonmark").enable(["table", "strikethrough"])

HOSTILE = [
    "![x](http://127.0.0.1:9/t.png)",
    "[Click to log in](http://127.0.0.1:9/login)",
    "<img src=http://127.0.0.1:9/t.png>",
    "<script>alert(1)</script>",
    "**bold** _it_ *it* `code` ~~gone~~",
    "# heading",
    "- item",
    "1. item",
    "2) item",
    "> quote",
    "| a | b |",
    "&amp; &lt;b&gt; &#65;",
    "\\*not\\* escaped",
    "[ref]: http://127.0.0.1:9/",
    ":red[coloured] :material/home:",
    "$x^2$",
    "    four spaces: a code block at the start of a line",
    "line one\nline two\n# heading on line 3",
    "KD alpha 0.9 — distill, 2025-03-01 12:01",
    "T=٣ (Arabic-Indic three)",
]


def _tags(markdown: str) -> list[str]:
    return re.findall(r"<(\w+)", RENDERER.render(markdown))


def _expected(value: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", value).strip()


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_render_as_their_own_text(value):
    escaped = md_text(value)
    assert set(_tags(escaped)) <= {"p"}, (value, RENDERER.render(escaped))
    assert rendered(escaped) == _expected(value)
    if value.startswith(("!", "[", "<", "*", "#", "-", "1.", ">", "    ")):  # else this case would prove nothing:
        assert set(_tags(value)) - {"p"} or rendered(value) != _expected(value), f"{value!r} is markup unescaped"


@pytest.mark.parametrize("value", ["see http://127.0.0.1:9/x", "www.example.com", "mail me@example.com"])
def test_gfm_autolink_literals_are_broken_up(value):
    """GFM turns bare "http://", "www." and e-mail addresses into links; markdown-it-py's CommonMark
    has no such extension, so check the escaped source no longer contains the trigger sequences."""
    escaped = md_text(value)
    assert not re.search(r"https?:|www\.|(?<!\\)@", escaped), escaped
    assert rendered(escaped) == value


def test_every_mix_of_punctuation_letters_and_spaces_renders_literally():
    rng = random.Random(0)
    alphabet = string.punctuation + "ab1 " + "٣é"
    for _ in range(400):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        if not value.strip():
            continue
        escaped = md_text(value)
        assert set(_tags(escaped)) <= {"p"}, (value, RENDERER.render(escaped))
        assert rendered(escaped) == value.strip(), (value, escaped)


def test_plain_words_are_left_alone():
    assert md_text("renamed run, 3 times; it's fine?") == "renamed run, 3 times; it's fine?"
    assert md_text(42) == "42"
