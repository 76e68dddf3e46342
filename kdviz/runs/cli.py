"""``python -m kdviz runs list|show|delete``: saved runs from the command line."""
from __future__ import annotations

import argparse
import sys

from kdviz.runs.store import RUN_KINDS, Run, RunStore
from kdviz.runs.tables import flatten


def register_cli(subparsers) -> None:
    """``python -m kdviz runs list|show|delete``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="runs folder (default: $KDVIZ_RUNS_DIR, else ~/.local/share/kdviz/runs)")
    parser = subparsers.add_parser("runs", help="list, show or delete saved runs")
    actions = parser.add_subparsers(dest="runs_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="saved runs, newest first")
    ls.add_argument("--kind", choices=RUN_KINDS)
    ls.add_argument("--name", help="only runs whose name contains this text")
    show = actions.add_parser("show", parents=[common], help="one run's settings, final metrics and reproduce command")
    show.add_argument("id")
    show.add_argument("--csv", action="store_true", help="print the per-step metrics as CSV instead")
    rm = actions.add_parser("delete", parents=[common], help="delete a run")
    rm.add_argument("id")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    store = RunStore(args.dir)
    if args.runs_action == "list":
        return _cli_list(store, args.kind, args.name)
    if args.runs_action == "show":
        print(store.export_csv(args.id) if args.csv else _describe(store.load(args.id)), end="")
        return 0
    run = store.load(args.id)
    if not args.yes and not _confirm(f"delete run {run.name!r} ({run.id})? [y/N] "):
        print("not deleted")
        return 1
    store.delete(run.id)
    print(f"deleted {run.id}")
    return 0


def _cli_list(store: RunStore, kind: str | None, name: str | None) -> int:
    listing = store.list(kind=kind, name_contains=name)
    for warning in listing.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not listing.runs:
        print(f"no saved runs in {store.root}")
    for run in listing.runs:
        print(f"{run.id}  {run.kind:<8}  {run.created[:19]}  {run.name}")
    return 0


def _describe(run: Run) -> str:
    lines = [f"{run.name}  ({run.kind}, {run.created}, {run.n_records} records)", f"id: {run.id}", "config:"]
    lines += [f"  {k} = {v}" for k, v in flatten(run.config).items()]
    lines += ["final:"] + [f"  {k} = {v}" for k, v in flatten(run.final).items()]
    lines += ["checkpoints: " + (", ".join(run.checkpoints) or "none"), f"reproduce: {run.reproduce}"]
    return "\n".join(lines) + "\n"


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        print("refusing to delete without --yes when not run interactively", file=sys.stderr)
        return False
    return input(prompt).strip().lower() in ("y", "yes")
