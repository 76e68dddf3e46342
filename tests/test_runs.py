"""Run store: round trips, crash safety, corrupt folders, unsafe names, exports, CLI."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from kdviz.runs import reproduce, tables
from kdviz.runs import store as R
from kdviz.checkpoints import save_checkpoint
from kdviz.cli import main as cli_main
from kdviz.engine import make_model
from kdviz.models import ModelConfig
from kdviz.runs.store import ID_RE, RunError, RunStore

torch.set_num_threads(1)
NO_CLI = set()  # "the command accepts no flags": keeps these tests independent of other modules' CLIs


@dataclass(frozen=True)
class _Cfg:
    T: float = 4.0
    hidden: tuple = (16, 8)


def fail(*args, **kwargs):
    raise OSError("crash (simulated)")


def records(n: int = 5, scale: float = 1.0) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        for run in ("distilled", "scratch"):
            out.append({"run": run, "step": 10 * i, "total": scale / i, "losses": {"kd": 0.9 * scale / i, "ce": 0.1 * scale / i},
                        "raw": {"kl": 0.05 / i}, "test_acc": None if i < n else 0.9, "done": i == n})
    return out


def save(store: RunStore, name: str = "run", kind: str = "distill", **kw) -> R.Run:
    kw.setdefault("reproduce", "python -m kdviz distill")
    return store.save(name=name, kind=kind, config=kw.pop("config", {"T": 4.0, "alpha": 0.9}), records=kw.pop("records", records()), **kw)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture
def ckpt(tmp_path) -> tuple[Path, torch.nn.Module]:
    cfg = ModelConfig("mlp", (8,))
    model = make_model(cfg, seed=3)
    return save_checkpoint(tmp_path / "student.pt", model, cfg), model


# ----------------------------------------------------------------------------- round trip
def test_round_trip_survives_a_new_store_instance(store, ckpt):
    path, model = ckpt
    recs = records()
    saved = save(store, "KD T=4", config={"cfg": _Cfg(), "lr": 1e-3, "widths": (1, 2)}, final={"test_acc": 0.93},
                 checkpoints={"student": path})
    again = RunStore(store.root).load(saved.id)  # a fresh store = a restarted server
    assert again.name == "KD T=4" and again.kind == "distill" and again.records == recs
    assert again.config == {"cfg": {"T": 4.0, "hidden": [16, 8]}, "lr": 1e-3, "widths": [1, 2]}
    assert again.final == {"test_acc": 0.93} and again.n_records == len(recs)
    assert [r.id for r in RunStore(store.root).list().runs] == [saved.id]
    sd = torch.load(io.BytesIO(store.weights_bytes(saved.id)), weights_only=True)
    assert sd.keys() == model.state_dict().keys()
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    assert store.weights_bytes(saved.id, "student", fmt="checkpoint") == path.read_bytes()


def test_list_newest_first_and_filters(store):
    from datetime import datetime, timedelta, timezone

    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    a = save(store, "Teacher big", kind="teacher", now=t0)
    b = save(store, "distil alpha", kind="distill", now=t0 + timedelta(seconds=5))
    c = save(store, "Distil beta", kind="distill", now=t0 + timedelta(seconds=9))
    assert [r.id for r in store.list().runs] == [c.id, b.id, a.id]
    assert [r.id for r in store.list(kind="distill").runs] == [c.id, b.id]
    assert [r.id for r in store.list(name_contains=" DISTIL ").runs] == [c.id, b.id]
    assert [r.id for r in store.list(kind="teacher", name_contains="beta").runs] == []
    with pytest.raises(RunError, match="kind"):
        store.list(kind="bogus")


def test_exports_match_the_records(store):
    recs = records(3)
    run = save(store, config={"T": 2.0, "student": {"arch": "mlp", "hidden": [30]}}, records=recs,
               final={"test_acc": 0.5, "per_class": [1.0, float("nan")]})
    rows = list(csv.DictReader(io.StringIO(store.export_csv(run.id))))
    assert len(rows) == len(recs)
    assert rows[0].keys() >= {"run", "step", "total", "losses.kd", "losses.ce", "raw.kl", "test_acc"}
    for row, rec in zip(rows, recs):
        assert row["run"] == rec["run"] and int(row["step"]) == rec["step"]
        assert float(row["losses.kd"]) == pytest.approx(rec["losses"]["kd"], rel=1e-15)
        assert row["test_acc"] == ("" if rec["test_acc"] is None else str(rec["test_acc"]))
    doc = json.loads(store.export_config_json(run.id))
    assert doc["config"] == {"T": 2.0, "student": {"arch": "mlp", "hidden": [30]}}
    assert doc["final"] == {"test_acc": 0.5, "per_class": [1.0, None]}  # strict JSON: NaN → null
    assert store.load(run.id).final["per_class"][1] != store.load(run.id).final["per_class"][1]  # the store keeps NaN
    assert doc["name"] == run.name and doc["reproduce"] == run.reproduce


# ----------------------------------------------------------------------------- crash safety
def test_crash_mid_save_leaves_previous_state_and_no_half_run(store, monkeypatch):
    first = save(store, "first")
    real_replace = os.replace

    def boom(src, dst):
        if str(dst).endswith(R.MANIFEST):
            fail()
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        save(store, "second")
    monkeypatch.setattr(os, "replace", real_replace)
    listing = store.list()
    assert [r.id for r in listing.runs] == [first.id] and listing.warnings == []
    assert store.load(first.id).records == records()
    assert [p.name for p in store.root.iterdir()] == [first.id]  # the temp folder was cleaned up


def test_hard_crash_leftovers_are_hidden_and_purged(store, monkeypatch):
    first = save(store, "first")
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: None)  # the process "dies" before cleaning up
    monkeypatch.setattr(os, "rename", fail)
    with pytest.raises(OSError, match="simulated"):
        save(store, "second")
    monkeypatch.undo()
    leftovers = [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]
    assert len(leftovers) == 1 and (leftovers[0] / R.MANIFEST).exists()  # complete, yet never renamed in
    listing = store.list()
    assert [r.id for r in listing.runs] == [first.id] and listing.warnings == []
    old = 1e9  # 2001: older than STALE_TMP_S
    os.utime(leftovers[0], (old, old))
    save(store, "third")
    assert not leftovers[0].exists()


def test_crash_mid_rename_keeps_old_name(store, monkeypatch):
    run = save(store, "old name")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        store.rename(run.id, "new name")
    monkeypatch.undo()
    assert store.load(run.id).name == "old name"
    assert sorted(p.name for p in run.path.iterdir()) == sorted([R.MANIFEST, R.METRICS, R.CKPT_DIR])  # no temp file left


# ----------------------------------------------------------------------------- corrupt folders
def _corrupt(store: RunStore, good: R.Run, how: str) -> str:
    bad = store.root / f"bad-{how}"
    shutil.copytree(good.path, bad)
    manifest = bad / R.MANIFEST
    if how == "json":
        manifest.write_text('{"format": "kdviz-run-v1", "name": ')
    elif how == "no-manifest":
        manifest.unlink()
    elif how == "no-metrics":
        (bad / R.METRICS).unlink()
    elif how == "no-checkpoint":
        (bad / R.CKPT_DIR / "student.pt").unlink()
    elif how == "kind":
        manifest.write_text(manifest.read_text().replace('"distill"', '"weird"'))
    elif how == "field":
        obj = json.loads(manifest.read_text())
        obj["config"] = "not a dict"
        manifest.write_text(json.dumps(obj))
    elif how == "binary":
        manifest.write_bytes(b"\xff\xfe\x00garbage")
    return bad.name


@pytest.mark.parametrize("how", ["json", "no-manifest", "no-metrics", "no-checkpoint", "kind", "field", "binary"])
def test_corrupt_folder_is_skipped_with_a_warning(store, ckpt, how):
    good = save(store, "good", checkpoints={"student": ckpt[0]})
    name = _corrupt(store, good, how)
    listing = store.list()
    assert [r.id for r in listing.runs] == [good.id]
    assert len(listing.warnings) == 1 and name in listing.warnings[0]
    with pytest.raises(RunError, match="corrupt"):
        store.load(name)


def test_corrupt_metrics_line_fails_load_not_list(store):
    run = save(store)
    with open(run.path / R.METRICS, "a") as fh:
        fh.write("{truncated\n")
    assert [r.id for r in store.list().runs] == [run.id]
    with pytest.raises(RunError, match="line"):
        store.load(run.id)


def test_foreign_entries_in_the_root(store):
    run = save(store)
    (store.root / "app" / "distill-1234").mkdir(parents=True)  # the jobs' scratch area: not a run, no warning
    (store.root / "notes.txt").write_text("hi")
    (store.root / "stray").mkdir()
    shutil.copytree(run.path, store.root / "My Copy")  # a valid run under a name that is not an id
    listing = store.list()
    assert [r.id for r in listing.runs] == [run.id]
    assert sorted(w.split("'")[1] for w in listing.warnings) == ["My Copy", "stray"]


def test_missing_root_lists_nothing(tmp_path):
    assert RunStore(tmp_path / "nope").list() == ([], [])


# ----------------------------------------------------------------------------- rename, delete, unsafe input
def test_rename_and_delete(store):
    a, b = save(store, "a"), save(store, "b")
    renamed = store.rename(a.id, "  better\tname ")
    assert renamed.name == "better name" and renamed.id == a.id
    assert RunStore(store.root).load(a.id).name == "better name"
    store.delete(a.id)
    assert [r.id for r in store.list().runs] == [b.id] and not a.path.exists()
    assert [p.name for p in store.root.iterdir()] == [b.id]
    with pytest.raises(RunError, match="no saved run"):
        store.load(a.id)
    with pytest.raises(RunError, match="no saved run"):
        store.delete(a.id)


@pytest.mark.parametrize("name", ["../../etc", "a/b", "..\\..\\win", "/abs/path", "~root", "x\x00y", "ünï code 名前"])
def test_unsafe_names_stay_display_text(store, tmp_path, name):
    before = set(tmp_path.rglob("*"))
    run = save(store, name)
    assert run.path.parent == store.root and ID_RE.fullmatch(run.id)
    assert store.load(run.id).name == R.clean_name(name)
    created = set(tmp_path.rglob("*")) - before
    assert all(store.root in p.parents or p == store.root for p in created)


@pytest.mark.parametrize("name", ["", "   ", "\n\t", "x" * 121, None, 42])
def test_bad_names_are_refused(store, name):
    with pytest.raises(RunError, match="name"):
        save(store, name)
    assert store.list().runs == []


@pytest.mark.parametrize("run_id", ["../x", "..", "a/b", "/etc", "", "A", "x" * 81, ".tmp-x", None])
def test_invalid_ids_are_refused(store, run_id):
    save(store)
    for call in (store.load, store.delete, lambda i: store.rename(i, "n"), store.export_csv, store.weights_bytes):
        with pytest.raises(RunError, match="invalid run id"):
            call(run_id)


def test_bad_inputs(store, ckpt, tmp_path):
    with pytest.raises(RunError, match="kind"):
        save(store, kind="bogus")
    with pytest.raises(RunError, match=r"config\.model"):
        save(store, config={"model": object()})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RunError, match="'student'.*cannot be saved"):
        save(store, checkpoints={"student": junk})
    with pytest.raises(RunError, match="not found"):
        save(store, checkpoints={"student": tmp_path / "missing.pt"})
    with pytest.raises(RunError, match="invalid checkpoint name"):
        save(store, checkpoints={"../..": ckpt[0]})
    assert store.list() == ([], [])
    run = save(store, checkpoints={"Student": ckpt[0]})
    assert run.checkpoints == {"student": "student.pt"}
    with pytest.raises(RunError, match="no checkpoint 'teacher'.*student"):
        store.weights_bytes(run.id, "teacher")
    with pytest.raises(RunError, match="format"):
        store.weights_bytes(run.id, fmt="pickle")


# ----------------------------------------------------------------------------- reproduce, job results, curves
DISTILL_SPEC = {
    "fn": "kdviz.runtime.training_jobs:distill_job", "data": "auto", "device": None, "out_dir": "/tmp/x",
    "student": {"arch": "mlp", "hidden": [128], "channels": [16, 32], "dropout": 0.0, "num_classes": 10},
    "train": {"epochs": 2.0, "batch_size": 64, "lr": 0.001, "seed": 0},
    "distill": {"T": 4.0, "alpha": 0.9}, "terms": [], "transfer": "without:3",
}


def test_reproduce_command_from_a_job_spec():
    cmd = reproduce.reproduce_command("distill", DISTILL_SPEC, known={
        "--data", "--student", "--epochs", "--batch-size", "--lr", "--seed", "--T", "--alpha", "--transfer"})
    assert cmd == ("python -m kdviz distill --data auto --student mlp:128 --epochs 2.0 --batch-size 64 "
                   "--lr 0.001 --seed 0 --T 4.0 --alpha 0.9 --transfer without:3")
    partial = reproduce.reproduce_command("teacher", {"model": {"arch": "cnn", "channels": [8, 16], "dropout": 0.2}, "live_test_n": 500},
                                  known={"--model", "--model-dropout"})
    assert partial == "python -m kdviz teacher --model cnn:8,16 --model-dropout 0.2  # not settable from the command line: live-test-n=500"
    assert reproduce.reproduce_command("teacher", {"model": {"arch": "mlp", "hidden": [1200, 1200]}}, known={"--model"}) == (
        "python -m kdviz teacher --model mlp:1200,1200")
    assert reproduce.reproduce_command("sweep", {"name": "a b; rm -rf /", "fast": True}, known={"--name", "--fast"}) == \
        "python -m kdviz sweep --name 'a b; rm -rf /' --fast"


def test_reproduce_command_parses_with_the_real_cli():
    from kdviz.cli import build_parser

    import shlex

    assert reproduce.cli_flags("distill") >= {"--student", "--T", "--alpha", "--teacher"}

    cmd = reproduce.reproduce_command("distill", {**DISTILL_SPEC, "teacher": "/tmp/t.pt"}).split("  #")[0]
    build_parser().parse_args(shlex.split(cmd)[3:])  # argparse exits (SystemExit) on an unknown flag


def test_save_job_result_copies_checkpoints_and_rewrites_paths(store, tmp_path):
    cfg = ModelConfig("mlp", (8,))
    paths = {n: save_checkpoint(tmp_path / f"{n}.pt", make_model(cfg, i), cfg) for i, n in enumerate(("teacher", "distilled", "scratch"))}
    spec = {**DISTILL_SPEC, "teacher": str(paths["teacher"])}
    events = [{"type": "record", **r} for r in records(2)]
    result = {"type": "result", "test_acc": {"distilled": 0.9, "scratch": 0.8},
              "checkpoints": {"distilled": str(paths["distilled"]), "scratch": str(paths["scratch"])}}
    run = R.save_job_result(store, "distill", "job", spec, events, result)
    assert set(run.checkpoints) == {"teacher", "distilled", "scratch"}
    assert run.final == {"test_acc": {"distilled": 0.9, "scratch": 0.8}} and run.records == records(2)
    assert run.config["teacher"] == "teacher.pt"  # the run's own copy, named without any server path ...
    assert "--teacher teacher.pt" in run.reproduce  # ... in the config and in the command
    assert str(tmp_path) not in run.reproduce + store.export_config_json(run.id) and str(store.root) not in run.reproduce
    for p in paths.values():
        p.unlink()  # the job's scratch files go away; the run keeps working
    assert R.student_checkpoint(store.load(run.id)) == "distilled"
    assert len(store.weights_bytes(run.id)) > 0
    teacher_run = R.save_job_result(store, "teacher", "t", {"model": {"arch": "mlp", "hidden": [8]}}, [],
                                    {"run": "teacher", "test_acc": 0.97, "checkpoint": str(save_checkpoint(tmp_path / "t.pt", make_model(cfg), cfg))})
    assert teacher_run.checkpoints == {"teacher": "teacher.pt"} and "checkpoint" not in teacher_run.final


def test_curve_series_and_comparison_rows(store):
    a = store.load(save(store, "A", config={"T": 4.0, "alpha": 0.9, "seed": 0, "out_dir": "/a"}, final={"acc": 0.9, "per_class": [0.8, 1.0]}).id)
    b = store.load(save(store, "B", config={"T": 2.0, "alpha": 0.9, "seed": 0, "out_dir": "/b"}, records=records(3, scale=2.0)).id)
    series = {label: (xs, ys) for label, xs, ys in tables.curve_series(b, "losses.kd")}
    assert series["B · scratch"] == ([10, 20, 30], [1.8, 0.9, 0.6])
    assert tables.curve_series(a, "test_acc") == [("A · distilled", [50], [0.9]), ("A · scratch", [50], [0.9])]
    assert tables.metric_names(a.records) == ["total", "losses.kd", "losses.ce", "raw.kl", "test_acc"]
    rows = tables.comparison_rows([a, b], only_differing=True)
    assert [r["config.T"] for r in rows] == [4.0, 2.0] and "config.alpha" not in rows[0]
    assert set(rows[0]) == {"name", "kind", "created", "config.T", "final.acc"}  # no plumbing, no lists
    assert "config.alpha" in tables.comparison_rows([a, b])[0]
    assert tables.accuracy_summary({"test_acc": {"distilled": 0.9712, "x": None}}) == "distilled 97.12%"
    assert tables.accuracy_summary({"test_acc": 0.5}) == "50.00%" and tables.accuracy_summary({}) == ""


# ----------------------------------------------------------------------------- CLI and environment
def test_cli_list_show_delete(store, capsys, monkeypatch):
    run = save(store, "cli run", final={"test_acc": 0.75})
    (store.root / "broken").mkdir()
    assert cli_main(["runs", "list", "--dir", str(store.root)]) == 0
    out, err = capsys.readouterr()
    assert run.id in out and "cli run" in out and "broken" in err
    assert cli_main(["runs", "show", run.id, "--dir", str(store.root)]) == 0
    assert "test_acc = 0.75" in capsys.readouterr().out
    assert cli_main(["runs", "show", "../etc", "--dir", str(store.root)]) == 2
    assert "invalid run id" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: refuse without --yes
    assert cli_main(["runs", "delete", run.id, "--dir", str(store.root)]) == 1 and run.path.exists()
    assert cli_main(["runs", "delete", run.id, "--yes", "--dir", str(store.root)]) == 0 and not run.path.exists()


def test_default_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "r"))
    assert RunStore().root == tmp_path / "r"
    monkeypatch.delenv("KDVIZ_RUNS_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert R.default_root() == tmp_path / "xdg" / "kdviz" / "runs"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert R.default_root() == Path.home() / ".local" / "share" / "kdviz" / "runs"
