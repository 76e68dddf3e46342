"""Helpers shared by the AppTest files (a plain module: two conftest.py files would clash on import)."""


def step_of(at) -> int:
    """The live step counter ("Step" metric, e.g. "12 / 32") as an int; -1 when not shown."""
    values = [m.value for m in at.metric if m.label == "Step"]
    return int(values[0].split("/")[0].replace(",", "")) if values else -1
