"""The shell command that reproduces a saved run: ``python -m kdviz <kind> --flag value ...``.

A run's config (the job spec) becomes command-line flags; settings the command does not accept
are listed in a trailing shell comment instead of being dropped silently.
"""
from __future__ import annotations

import json
import shlex
from typing import Any

# Job plumbing, not experiment settings: never turned into flags.
NOT_FLAGS = frozenset({"fn", "type", "device", "out_dir", "checkpoints", "records", "result"})
# Nested groups of a job spec whose keys are command-line settings themselves (kdviz/runtime/training_jobs.py).
_LIFTED = ("train", "distill")


def model_spec(cfg: Any) -> str:
    """``{"arch": "mlp", "hidden": [128]}`` → ``"mlp:128"`` (the CLI's model spec); strings pass through."""
    if isinstance(cfg, str):
        return cfg
    widths = cfg.get("hidden") if cfg.get("arch", "mlp") == "mlp" else cfg.get("channels")
    return f"{cfg.get('arch', 'mlp')}:{','.join(str(int(w)) for w in widths or ())}"


def _flag_value(value: Any) -> str | None:
    if isinstance(value, dict) and "arch" in value:
        return model_spec(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))  # e.g. method terms
    return str(value)


def config_flags(config: dict) -> list[tuple[str, str | None]]:
    """``[(flag, text)]`` from a config; ``text`` None means a bare flag (a True boolean).

    ``snake_case`` keys become ``--kebab-case`` (``T`` stays ``--T``); groups in ``_LIFTED``
    (``train``, ``distill``) are flattened one level; False/None/empty values are left out; a model
    config becomes ``--student mlp:128`` plus ``--student-dropout 0.2`` when it has dropout.
    """
    items = []
    for key, value in config.items():
        if key in _LIFTED and isinstance(value, dict):
            items += config_flags(value)
            continue
        if key in NOT_FLAGS or key.startswith("_") or value is None or value is False or value in ([], {}, ""):
            continue
        flag = "--" + key.replace("_", "-")
        text = None if value is True else _flag_value(value)
        if value is True or text is not None:
            items.append((flag, text))
        if isinstance(value, dict) and value.get("dropout"):  # the arch:widths spec has no room for it
            items.append((f"{flag}-dropout", str(value["dropout"])))
    return items


def cli_flags(command: str) -> set[str] | None:
    """Option strings that ``python -m kdviz <command>`` accepts, or None if there is no such command."""
    from kdviz.cli import build_parser  # imported late: kdviz.cli imports the runs store, which imports this module

    try:
        parser = build_parser()
    except Exception:  # noqa: BLE001 — another module's CLI failing to import must not stop a save
        return None
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        sub = getattr(action, "choices", {}).get(command)
        if sub is not None:
            return {opt for a in sub._actions for opt in a.option_strings}
    return None


def reproduce_command(kind: str, config: dict, known: set[str] | None = None) -> str:
    """``python -m kdviz <kind> --flag value ...`` from a run's config (each run kind is a subcommand).

    ``known``: the flags the command accepts (default: read from the CLI parser when it has the
    command); settings it does not accept are listed in a trailing shell comment, not dropped silently.
    """
    known = cli_flags(kind) if known is None else known
    words, extra = ["python", "-m", "kdviz", kind], []
    for flag, text in config_flags(config):
        if known is not None and flag not in known:
            extra.append(f"{flag[2:]}={text if text is not None else 'true'}")
            continue
        words += [flag] if text is None else [flag, text]
    line = shlex.join(words)
    return line + (f"  # not settable from the command line: {', '.join(extra)}" if extra else "")
