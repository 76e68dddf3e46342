"""Command line: ``python -m kdviz [command] ...``.

Subcommands come from the modules in ``CLI_MODULES``; each exposes ``register_cli(subparsers)``
which adds a parser whose ``func`` default runs the command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

CLI_MODULES = ("kdviz.commands", "kdviz.experiments.compare", "kdviz.experiments.cli", "kdviz.runs.cli", "kdviz.lm.cli")
DEFAULT_COMMAND = "distill"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdviz", description="kdviz: knowledge distillation on MNIST")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in CLI_MODULES:
        importlib.import_module(name).register_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = [DEFAULT_COMMAND, *argv]
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyboardInterrupt) as err:
        print(f"error: {err}" if isinstance(err, ValueError) else "interrupted", file=sys.stderr)
        return 2
