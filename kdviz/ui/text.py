"""User-supplied strings inside Streamlit Markdown: shown as the characters typed, never as markup.

``st.markdown``, ``st.caption``, ``st.success``/``info``/``warning``/``error``, titles, headers and
expander labels all render Markdown, so a run called ``![x](http://host/t.png)`` would make every
visitor's browser fetch that URL, and ``[Log in](http://…)`` would become a live link inside the
app's own message. Interpolate every user string (run names, URL values, file names, messages
that echo input) through :func:`md_text`::

    st.warning(f"Delete “{md_text(run.name)}” for good?")

Pure (no Streamlit import), so it is unit-tested against a CommonMark renderer.
"""
from __future__ import annotations

import re

# The characters that can open Markdown syntax within one line: emphasis, code, links and images,
# raw HTML and entities, headings, list and quote markers, tables, GFM strikethrough and autolinks
# ("http:", "www.", "a@b"), and Streamlit's extras (:red[…] colours, $…$ maths). A backslash before
# any ASCII punctuation character makes CommonMark show the character itself; the rest (, ; ' " ? …)
# never start syntax, so they stay unescaped and messages stay readable.
SPECIAL = "\\`*_{}[]()<>#+-.!|~$:&@"
_SPECIAL = re.compile("([" + re.escape(SPECIAL) + "])")
# Line breaks would let a string open a new block (a heading, a list, a code fence); other control
# characters have no business in a label. U+2028/U+2029 are line breaks too in some renderers.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")


def md_text(value: object) -> str:
    """``value`` as Markdown source that renders as exactly its characters (control characters become one space)."""
    text = _SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(value)))
    # four leading spaces would open a code block where the string starts a line; an entity is no indent
    return "&#32;" + text[1:] if text.startswith(" ") else text
