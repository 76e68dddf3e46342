"""Interview prep and classroom lessons (no Streamlit): spot-the-bug snippets, a self-graded quiz, the lesson path."""


def lookup(table: dict, key: str, what: str):
    """``table[key]``, else a ValueError naming the unknown id and the known ones (bugs, questions)."""
    if key not in table:
        raise ValueError(f"unknown {what} id {key!r}; known: {', '.join(table)}")
    return table[key]
