"""Tables: saved runs as final-accuracy text, CSV of the per-step records, metric names for chart
pickers, per-sub-run curves and side-by-side comparison rows; and plain-text tables for the CLI."""
from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

import pandas as pd

from kdviz.runs.reproduce import NOT_FLAGS

if TYPE_CHECKING:
    from kdviz.runs.store import Run


def accuracy_summary(final: dict) -> str:
    """Final test accuracy in words: ``"97.8%"`` or ``"distilled 97.1% · scratch 96.5% · teacher 98.9%"``."""
    acc = final.get("test_acc")
    if isinstance(acc, (int, float)) and not isinstance(acc, bool):
        return f"{100 * acc:.2f}%"
    if isinstance(acc, dict):
        parts = [f"{k} {100 * v:.2f}%" for k, v in acc.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return " · ".join(parts)
    return ""


def flatten(record: dict, prefix: str = "") -> dict:
    """``{"losses": {"kd": 1}}`` → ``{"losses.kd": 1}``; lists become JSON text."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return out


def records_csv(records: list[dict]) -> str:
    """CSV with one row per record; columns in order of first appearance; missing cells empty."""
    rows = [flatten(r) for r in records]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def metric_names(records: list[dict]) -> list[str]:
    """Numeric per-step metrics present in the records (flattened names), for chart pickers."""
    names: dict[str, None] = {}
    for rec in records:
        for key, value in flatten(rec).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step", "done"):
                names.setdefault(key, None)
    return list(names)


def curve_series(run: Run, metric: str, x: str = "step") -> list[tuple[str, list, list]]:
    """``(label, xs, ys)`` per sub-run (``record["run"]``: teacher/distilled/...) of ``metric``; None values skipped."""
    groups: dict[str, tuple[list, list]] = {}
    for rec in run.records or ():
        flat = flatten(rec)
        y = flat.get(metric)
        if not isinstance(y, (int, float)) or isinstance(y, bool) or flat.get(x) is None:
            continue
        label = f"{run.name} · {rec['run']}" if rec.get("run") else run.name
        xs, ys = groups.setdefault(label, ([], []))
        xs.append(flat[x])
        ys.append(y)
    return [(label, xs, ys) for label, (xs, ys) in groups.items()]


def _scalars(obj: dict, prefix: str = "") -> dict:
    """Flattened scalar entries only (lists such as confusion matrices do not fit a table cell)."""
    out = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (int, float, str, bool)):
            out[f"{prefix}{key}"] = value
    return out


def comparison_rows(runs: list[Run], only_differing: bool = False) -> list[dict]:
    """One row per run: name, kind, created, scalar config settings (job plumbing such as ``out_dir``
    left out) and scalar final metrics; ``only_differing`` keeps the settings that differ between runs."""
    configs = [_scalars({k: v for k, v in r.config.items() if k not in NOT_FLAGS}) for r in runs]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    if only_differing and len(runs) > 1:
        keys = [k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]
    rows = []
    for run, cfg in zip(runs, configs):
        finals = {f"final.{k}": v for k, v in _scalars(run.final).items()}
        rows.append({"name": run.name, "kind": run.kind, "created": run.created, **{f"config.{k}": cfg.get(k) for k in keys}, **finals})
    return rows


def text_table(rows: list[dict[str, str]]) -> str:
    """Rows of display strings as a plain-text table (pandas' ``to_string``): every column left-aligned,
    two spaces apart, a dashed rule under the header. The first row's keys are the column headers."""
    if not rows:
        return ""
    df = pd.DataFrame(rows, dtype=str)
    # one extra space per column: pandas separates columns by one space, a reader's eye wants two
    widths = {c: 1 + max(len(c), *(len(v) for v in df[c])) for c in df.columns}
    text = df.to_string(index=False, justify="left", formatters={c: f"{{:<{w}}}".format for c, w in widths.items()})
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])
