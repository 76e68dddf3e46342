"""Helpers shared by the AppTest files (a plain module: two conftest.py files would clash on import)."""


def step_of(at) -> int:
    """The live step counter ("Step" metric, e.g. "12 / 32") as an int; -1 when not shown."""
    values = [m.value for m in at.metric if m.label == "Step"]
    return int(values[0].split("/")[0].replace(",", "")) if values else -1


def rendered(markdown: str) -> str:
    """The text a reader sees of ``markdown`` (CommonMark + GFM tables/strikethrough, by markdown-it-py,
    an independent renderer), with tags removed; see tests/test_hosted_text.py for the markup checks."""
    import html
    import re

    from markdown_it import MarkdownIt

    page = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
    return html.unescape(re.sub(r"<[^>]*>", "", page)).strip()
