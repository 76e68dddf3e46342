"""Sweep results computed ahead (``bench/precompute.py``), shipped as small JSON files.

Hosted mode switches live sweeps off (they train dozens of networks); the Experiments page then
shows the same sweep from ``kdviz/assets/precomputed/<name>.json`` with how it was made.
Each file is ``{"provenance": {...}, "result": <a sweep result event>}``; the provenance names
the command, seeds, date, kdviz git commit, device and data it was computed with.
"""
from __future__ import annotations

import json
from pathlib import Path

PRECOMPUTED_DIR = Path(__file__).resolve().parents[1] / "assets" / "precomputed"
MAX_BYTES = 50_000
PROVENANCE_KEYS = ("command", "seeds", "date", "commit", "device", "data")
RESULT_KEYS = ("param", "scenario", "values", "seeds", "rows")
# exercise name (kdviz.experiments.sweeps.EXERCISES) → the precomputed file that answers it
EXERCISE_FILES = {"accuracy-vs-temperature": "sweep-T-few-labels"}


def path_of(name: str, folder: Path = PRECOMPUTED_DIR) -> Path:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"precomputed result name must be letters, digits, '-' or '_', got {name!r}")
    return folder / f"{name}.json"


def check(data: object, name: str) -> dict:
    """``data`` itself when it has a provenance and a sweep result; else ValueError naming what is missing."""
    if not isinstance(data, dict) or not isinstance(data.get("provenance"), dict) or not isinstance(data.get("result"), dict):
        raise ValueError(f"precomputed result {name!r} must be an object with 'provenance' and 'result'")
    missing = [k for k in PROVENANCE_KEYS if k not in data["provenance"]] + [k for k in RESULT_KEYS if k not in data["result"]]
    if missing:
        raise ValueError(f"precomputed result {name!r} lacks {', '.join(missing)}")
    return data


def load(name: str, folder: Path = PRECOMPUTED_DIR) -> dict:
    """The checked contents of ``<folder>/<name>.json``; ValueError naming the file when absent, too big or malformed."""
    path = path_of(name, folder)
    if not path.is_file():
        raise ValueError(f"no precomputed result {name!r} (looked for {path})")
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"precomputed result {path} is {path.stat().st_size:,} bytes, over the {MAX_BYTES:,} limit")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"precomputed result {path} could not be read: {err}") from err
    return check(data, name)


def for_exercise(exercise: str, folder: Path = PRECOMPUTED_DIR) -> dict | None:
    """The precomputed result for an exercise, or None when none is shipped."""
    name = EXERCISE_FILES.get(exercise)
    return None if name is None or not path_of(name, folder).is_file() else load(name, folder)


def provenance_text(prov: dict) -> str:
    """One line: how a precomputed result was made."""
    seeds = prov["seeds"]
    n = len(seeds) if isinstance(seeds, list) else seeds
    return (f"Computed ahead with `{prov['command']}` — {n} seeds, {prov['data']}, on {prov['device']}, "
            f"{prov['date']}, kdviz commit {str(prov['commit'])[:10]}.")
