"""Saved runs in hosted mode: owners, publishing, quotas, eviction, re-saves, no server paths, expiry."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from kdviz.checkpoints import save_checkpoint
from kdviz.engine import make_model
from kdviz.hosted import run_quota
from kdviz.models import ModelConfig
from kdviz.runs.access import Quota, eviction, owner_key, scrub_text
from kdviz.runs.store import AlreadySaved, QuotaError, RunError, RunStore, save_job_result

A, B = "a" * 20 + "-browser-A", "b" * 20 + "-browser-B"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
RECORDS = [{"run": "distilled", "step": 10 * i, "total": 1.0 / i} for i in range(1, 4)]


def save(store: RunStore, name: str, owner: str | None, minutes: int = 0, **kw):
    return store.save(name=name, kind="distill", config={"T": 4.0}, records=RECORDS, owner=owner,
                      reproduce="python -m kdviz distill", now=T0 + timedelta(minutes=minutes), **kw)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs")


@pytest.fixture
def ckpt(tmp_path) -> Path:
    cfg = ModelConfig("mlp", (8,))
    return save_checkpoint(tmp_path / "student.pt", make_model(cfg), cfg)


# ----------------------------------------------------------------------------- owners
def test_a_private_run_is_invisible_and_unchangeable_to_another_owner(store, ckpt):
    mine = save(store, "A's run", A, checkpoints={"student": ckpt})
    other = save(store, "B's run", B, minutes=1)
    assert [r.id for r in store.list(owner=A).runs] == [mine.id]
    assert [r.id for r in store.list(owner=B).runs] == [other.id]
    assert {r.id for r in store.list().runs} == {mine.id, other.id}  # single-user mode: everything
    for action in (lambda: store.load(mine.id, owner=B), lambda: store.export_csv(mine.id, owner=B),
                   lambda: store.export_config_json(mine.id, owner=B), lambda: store.weights_bytes(mine.id, owner=B),
                   lambda: store.rename(mine.id, "pwned", owner=B), lambda: store.delete(mine.id, owner=B),
                   lambda: store.publish(mine.id, owner=B)):
        with pytest.raises(RunError, match="no saved run with id"):  # the same answer as for an id that does not exist
            action()
    again = store.load(mine.id, owner=A)
    assert again.name == "A's run" and again.path.is_dir() and len(store.weights_bytes(mine.id, owner=A)) > 0


def test_the_manifest_keeps_a_digest_not_the_token(store):
    run = save(store, "r", A)
    text = (run.path / "run.json").read_text()
    assert A not in text and json.loads(text)["owner"] == owner_key(A) != owner_key(B)


def test_a_published_run_is_readable_by_others_but_never_changeable(store, ckpt):
    run = save(store, "shared", A, checkpoints={"student": ckpt})
    assert store.publish(run.id, owner=A).published
    assert [r.id for r in store.list(owner=B).runs] == [run.id]
    assert store.load(run.id, owner=B).records == RECORDS
    assert store.export_csv(run.id, owner=B) and store.weights_bytes(run.id, owner=B)
    for action in (lambda: store.rename(run.id, "pwned", owner=B), lambda: store.delete(run.id, owner=B),
                   lambda: store.publish(run.id, owner=B, published=False)):
        with pytest.raises(RunError, match="published by another user"):
            action()
    assert store.load(run.id, owner=A).name == "shared" and store.load(run.id).published
    store.rename(run.id, "still shared", owner=A)  # the owner's rename keeps it published
    assert store.load(run.id, owner=B).name == "still shared"
    store.publish(run.id, owner=A, published=False)
    assert store.list(owner=B).runs == []
    store.delete(run.id, owner=A)
    assert store.list().runs == []


def test_bad_owner_tokens_are_refused(store):
    for bad in ("short", "x" * 200, "has space in it....", 42):
        with pytest.raises(ValueError, match="owner token"):
            store.list(owner=bad)


# ----------------------------------------------------------------------------- quotas, eviction, re-saves
def test_per_owner_run_cap(tmp_path):
    store = RunStore(tmp_path / "runs", quota=Quota(max_runs=2))
    save(store, "1", A), save(store, "2", A, minutes=1)
    with pytest.raises(QuotaError, match="you have 2 saved runs, the most this server keeps per user is 2"):
        save(store, "3", A, minutes=2)
    save(store, "B may still save", B, minutes=3)
    assert store.usage(A)[0] == 2 and store.usage(B)[0] == 1


def test_per_owner_byte_cap(tmp_path, ckpt):
    size = ckpt.stat().st_size
    store = RunStore(tmp_path / "runs", quota=Quota(max_bytes=size + 10_000))
    save(store, "fits", A, checkpoints={"student": ckpt})
    with pytest.raises(QuotaError, match="MB"):
        save(store, "too much", A, minutes=1, checkpoints={"student": ckpt})
    assert store.usage(A)[1] >= size


def test_total_cap_evicts_oldest_unpublished_first(tmp_path, ckpt):
    size = ckpt.stat().st_size
    store = RunStore(tmp_path / "runs", quota=Quota(max_total_bytes=int(3.5 * size)))
    old_pub = save(store, "old published", A, 0, checkpoints={"s": ckpt})
    store.publish(old_pub.id, owner=A)
    old, newer = save(store, "old", B, 1, checkpoints={"s": ckpt}), save(store, "newer", A, 2, checkpoints={"s": ckpt})
    latest = save(store, "latest", B, 3, checkpoints={"s": ckpt})  # 4 runs do not fit: "old" goes, the published one stays
    assert {r.id for r in store.list().runs} == {old_pub.id, newer.id, latest.id}
    assert not old.path.exists()
    store.publish(newer.id, owner=A), store.publish(latest.id, owner=B)
    with pytest.raises(QuotaError, match="store is full"):  # only published runs left: refuse, evict nothing
        save(store, "no room", A, 4, checkpoints={"s": ckpt})
    assert len(store.list().runs) == 3


def test_eviction_rule_by_hand():
    runs = [("p", True, 5), ("u1", False, 3), ("u2", False, 3), ("u3", False, 3)]
    assert eviction(runs, 1, 15) == []
    assert eviction(runs, 4, 15) == ["u1"]
    assert eviction(runs, 7, 15) == ["u1", "u2"]
    assert eviction(runs, 11, 15) is None  # 5 published + 11 > 15 even with every unpublished run gone


def test_saving_the_same_job_twice_is_a_no_op(store):
    first = save(store, "once", A, source="job-s1-7")
    with pytest.raises(AlreadySaved, match="already saved as “once”") as err:
        save(store, "twice", A, minutes=1, source="job-s1-7")
    assert err.value.run.id == first.id and len(store.list().runs) == 1
    save(store, "another job", A, minutes=2, source="job-s1-8")
    assert len(store.list().runs) == 2


def test_hosted_quota_from_the_environment():
    assert run_quota({}) is None
    assert run_quota({"KDVIZ_HOSTED": "1"}) == Quota(20, 50_000_000, 2_000_000_000)
    env = {"KDVIZ_HOSTED": "1", "KDVIZ_MAX_RUNS_PER_OWNER": "3", "KDVIZ_MAX_BYTES_PER_OWNER": "1000", "KDVIZ_MAX_RUNS_BYTES": "5000"}
    assert run_quota(env) == Quota(3, 1000, 5000)
    with pytest.raises(ValueError, match="KDVIZ_MAX_RUNS_PER_OWNER='-1'"):
        run_quota({"KDVIZ_HOSTED": "1", "KDVIZ_MAX_RUNS_PER_OWNER": "-1"})


# ----------------------------------------------------------------------------- no server paths
def test_no_server_path_in_config_reproduce_or_export(store, tmp_path):
    uploads = tmp_path / "kdviz-uploads"
    uploads.mkdir()
    cfg = ModelConfig("mlp", (8,))
    teacher = save_checkpoint(uploads / "teacher-0123abcd.pt", make_model(cfg), cfg)
    student = save_checkpoint(tmp_path / "jobs" / "distill-1" / "distilled.pt", make_model(cfg, 1), cfg)
    spec = {"fn": "distill", "teacher": str(teacher), "data_dir": "/srv/secret/data", "alpha": 0.9, "T": 4.0}
    run = save_job_result(store, "distill", "job", spec, [], {"checkpoints": {"distilled": str(student)}}, owner=A)
    shown = [run.reproduce, store.export_config_json(run.id, owner=A), json.dumps(store.load(run.id).config),
             (run.path / "run.json").read_text()]
    for text in shown:
        for secret in (str(tmp_path), str(store.root), "/srv/secret", "kdviz-uploads"):
            assert secret not in text, (secret, text)
    assert run.config["teacher"] == "teacher.pt" and "--teacher teacher.pt" in run.reproduce


def test_paths_in_runs_saved_before_are_hidden_when_read(store):
    run = save(store, "old", None)
    raw = json.loads((run.path / "run.json").read_text())
    raw["config"]["teacher"] = "/tmp/kdviz-uploads/teacher-abc.pt"
    raw["reproduce"] = "python -m kdviz distill --teacher /home/me/runs/x/checkpoints/teacher.pt --T 4"
    (run.path / "run.json").write_text(json.dumps(raw))
    again = store.load(run.id)
    assert again.config["teacher"] == "teacher-abc.pt"
    assert again.reproduce == "python -m kdviz distill --teacher teacher.pt --T 4"
    assert "/tmp" not in store.export_config_json(run.id)


@pytest.mark.parametrize("text, want", [
    ("--teacher /a/b/t.pt --T 4", "--teacher t.pt --T 4"),
    ("'/srv/data/t.pt'", "'t.pt'"),
    ("C:\\Users\\me\\t.pt", "t.pt"),
    ("~/runs/t.pt", "t.pt"),
    ("mlp:128 a/b 1/2", "mlp:128 a/b 1/2"),  # relative bits and ratios are not server paths
    ("https://example.org/x", "https://example.org/x"),
])
def test_scrub_text(text, want):
    assert scrub_text(text) == want


# ----------------------------------------------------------------------------- expiry
def test_session_job_dirs_are_removed_only_under_the_jobs_root(tmp_path):
    from kdviz.ui.retention import remove_job_dirs

    root, elsewhere = tmp_path / "jobs", tmp_path / "keep"
    (root / "distill-1").mkdir(parents=True), elsewhere.mkdir()
    handles = [SimpleNamespace(spec={"out_dir": str(root / "distill-1")}), SimpleNamespace(spec={"out_dir": str(elsewhere)}),
               SimpleNamespace(spec={})]
    assert remove_job_dirs(handles, root) == 1
    assert not (root / "distill-1").exists() and elsewhere.is_dir()


def test_old_uploads_are_swept(tmp_path):
    from kdviz.ui.teachers import purge_old_uploads

    old, new, other = tmp_path / "teacher-old.pt", tmp_path / "teacher-new.pt", tmp_path / "notes.txt"
    for p in (old, new, other):
        p.write_bytes(b"x")
    past = time.time() - 7 * 3600
    os.utime(old, (past, past)), os.utime(other, (past, past))
    assert purge_old_uploads(tmp_path, 6 * 3600) == 1
    assert not old.exists() and new.exists() and other.exists()


# ----------------------------------------------------------------------------- the Save button (AppTest)
def _save_button_app(runs_dir: str, token: str) -> None:
    import streamlit as st

    import kdviz.ui.live as live
    from kdviz.ui.owner import OWNER_KEY

    st.session_state.setdefault(OWNER_KEY, token)
    live.save_controls("distill", "distill")  # its job comes from the test's patched live.get_job


def _fake_job(name):
    from types import SimpleNamespace

    return SimpleNamespace(result={"test_acc": 0.9}, runs={"distilled": None}, spec={"fn": "distill", "T": 4.0},
                           owner="session-1", id=7, records=lambda run: [{"run": run, "step": 1, "total": 1.0}])


def test_save_button_saves_once_and_says_when_the_cap_is_reached(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDVIZ_HOSTED", "1")
    monkeypatch.setenv("KDVIZ_MAX_RUNS_PER_OWNER", "1")
    fake = _fake_job("distill")
    monkeypatch.setattr("kdviz.ui.live.get_job", lambda name: fake)  # restored after the test (the module is shared)
    at = AppTest.from_function(_save_button_app, args=(str(tmp_path / "runs"), A), default_timeout=60).run()
    assert not at.exception and "Your saved runs: 0 of 1" in at.caption[0].value
    at.button(key="distill_save").click().run()
    assert at.success[0].value.startswith("Saved as “distill run”")
    assert "the cap is reached" in at.caption[0].value and at.button(key="distill_save").disabled
    assert [r.owner for r in RunStore(tmp_path / "runs").list().runs] == [owner_key(A)]
    monkeypatch.setenv("KDVIZ_MAX_RUNS_PER_OWNER", "5")
    at.run()
    at.button(key="distill_save").click().run()  # the same finished job again
    assert "already saved as “distill run”" in at.success[0].value
    assert len(RunStore(tmp_path / "runs").list().runs) == 1
