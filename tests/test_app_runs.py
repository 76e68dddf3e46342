"""Saved runs page (AppTest): listing, corrupt-folder warning, URL state, compare, rename, delete."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from unittest.mock import PropertyMock, patch

import pytest
from streamlit.testing.v1 import AppTest

from apptools import rendered as shown
from kdviz.runs.store import RunStore

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "runs.py")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def _records(scale: float) -> list[dict]:
    return [{"run": run, "step": 10 * i, "total": scale / i, "losses": {"kd": scale / i}, "test_acc": 0.5 + 0.04 * i}
            for i in range(1, 6) for run in ("distilled", "scratch")]


@pytest.fixture
def store(tmp_path, monkeypatch) -> RunStore:
    from kdviz.checkpoints import save_checkpoint
    from kdviz.engine import make_model
    from kdviz.models import ModelConfig

    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    store = RunStore()
    cfg = ModelConfig("mlp", (8,))
    ckpt = save_checkpoint(tmp_path / "distilled.pt", make_model(cfg), cfg)
    store.save(name="Teacher CNN", kind="teacher", config={"model": {"arch": "cnn", "channels": [8]}},
               records=[{"run": "teacher", "step": 10, "total": 0.5}], final={"test_acc": 0.98}, reproduce="python -m kdviz teacher", now=T0)
    store.save(name="KD alpha 0.9", kind="distill", config={"T": 4.0, "alpha": 0.9}, records=_records(1.0),
               final={"test_acc": {"distilled": 0.95, "scratch": 0.93}}, reproduce="python -m kdviz distill --alpha 0.9",
               checkpoints={"distilled": ckpt}, now=T0 + timedelta(minutes=1))
    store.save(name="KD alpha 0.5", kind="distill", config={"T": 4.0, "alpha": 0.5}, records=_records(2.0),
               final={"test_acc": {"distilled": 0.94, "scratch": 0.93}}, reproduce="python -m kdviz distill --alpha 0.5", now=T0 + timedelta(minutes=2))
    (store.root / "broken-run").mkdir()
    (store.root / "broken-run" / "run.json").write_text("{ not json")
    return store


def run_page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def ids_by_name(store: RunStore) -> dict[str, str]:
    return {r.name: r.id for r in store.list().runs}


def warnings(at: AppTest) -> list[str]:
    return [shown(w.value) for w in at.warning]


def test_lists_runs_and_warns_about_the_corrupt_folder(store):
    at = run_page()
    assert not at.exception
    assert any("broken-run" in w for w in warnings(at))
    table = at.dataframe[0].value
    assert list(table["name"]) == ["KD alpha 0.5", "KD alpha 0.9", "Teacher CNN"]  # newest first
    assert list(table["test accuracy"])[2] == "98.00%"
    assert at.multiselect(key="runs_sel").options == [store.list().runs[i].name + " — " + k + ", " + t
                                                      for i, k, t in ((0, "distill", "2025-03-01 12:02"), (1, "distill", "2025-03-01 12:01"), (2, "teacher", "2025-03-01 12:00"))]


def test_filters_come_from_the_url_and_go_back_to_it(store):
    at = run_page({"kind": "teacher"})
    assert list(at.dataframe[0].value["name"]) == ["Teacher CNN"]
    at.selectbox(key="runs_kind").set_value("distill")
    at.text_input(key="runs_q").set_value("0.9").run()
    assert list(at.dataframe[0].value["name"]) == ["KD alpha 0.9"]
    assert at.query_params["kind"] == "distill" and at.query_params["q"] == "0.9"


def test_bad_url_values_are_refused_with_a_message(store):
    at = run_page({"kind": "hacker", "sel": "../../etc/passwd", "metric": "x;y"})
    assert not at.exception
    texts = warnings(at)
    for name in ("kind", "sel", "metric"):
        assert any(t.startswith(f"URL parameter '{name}=") for t in texts), name
    assert at.selectbox(key="runs_kind").value == "all" and at.multiselect(key="runs_sel").value == []
    assert len(at.dataframe[0].value) == 3


def test_url_values_echoed_in_warnings_are_plain_text(store):
    """A shared link must not make the app's own warning show an image or a live link."""
    image, link = "![x](http://127.0.0.1:9/t.png)", "[Log in](http://127.0.0.1:9/x)"  # under 40 characters: echoed whole
    at = run_page({"kind": image, "metric": link})
    assert not at.exception
    refusals = [w.value for w in at.warning if "URL parameter" in shown(w.value)]
    assert len(refusals) == 2
    for markdown in refusals:
        assert "](http" not in markdown and "![" not in markdown, markdown
    assert f"'kind={image}'" in shown(refusals[0]) and f"'metric={link}'" in shown(refusals[1])


def test_selected_runs_are_overlaid_and_compared(store):
    ids = ids_by_name(store)
    at = run_page({"sel": f"{ids['KD alpha 0.9']},{ids['KD alpha 0.5']},gone-run-123"})
    assert not at.exception
    assert any("gone-run-123" in w for w in warnings(at))
    assert at.selectbox(key="runs_metric").value == "test_acc"
    assert len(at.get("plotly_chart")) == 1
    comparison = at.dataframe[1].value
    assert list(comparison["name"]) == ["KD alpha 0.9", "KD alpha 0.5"] and list(comparison["config.alpha"]) == ["0.9", "0.5"]
    assert "config.T" not in comparison  # same in both: hidden while "only settings that differ" is on
    assert [c.value for c in at.code] == ["python -m kdviz distill --alpha 0.9", "python -m kdviz distill --alpha 0.5"]
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Metrics CSV", "Config JSON", "distilled .pt", "Metrics CSV", "Config JSON"]
    assert at.query_params["sel"] == f"{ids['KD alpha 0.9']},{ids['KD alpha 0.5']}"


def test_rename_then_delete_with_confirmation(store):
    rid = ids_by_name(store)["KD alpha 0.9"]
    at = run_page({"sel": rid})
    at.text_input(key=f"runs_name_{rid}").set_value("renamed run")
    at.button(key=f"runs_rename_{rid}").click().run()
    assert [s.value for s in at.success] == ["Renamed to “renamed run”."]
    assert RunStore(store.root).load(rid).name == "renamed run"
    at.button(key=f"runs_del_{rid}").click().run()
    assert any("for good" in w for w in warnings(at)) and (store.root / rid).exists()
    at.button(key=f"runs_no_{rid}").click().run()  # cancel keeps it
    assert (store.root / rid).exists() and not any("for good" in w for w in warnings(at))
    at.button(key=f"runs_del_{rid}").click().run()
    at.button(key=f"runs_yes_{rid}").click().run()
    assert not at.exception and not (store.root / rid).exists()
    assert [s.value for s in at.success] == [f"Deleted run {rid}."]
    assert at.multiselect(key="runs_sel").value == [] and "renamed run" not in list(at.dataframe[0].value["name"])


def test_delete_after_rename_when_the_browser_sends_the_old_label(store):
    """The browser sends back the labels it displayed; after a rename the old label is no option any more.
    That used to land in the selection and crash the page (TypeError, with a traceback showing server paths)."""
    rid = ids_by_name(store)["KD alpha 0.9"]
    at = run_page({"sel": rid})
    old_labels = list(at.multiselect(key="runs_sel").values)
    at.text_input(key=f"runs_name_{rid}").set_value("renamed run")
    at.button(key=f"runs_rename_{rid}").click().run()
    browser_sends = patch.object(type(at.multiselect(key="runs_sel")), "values", new_callable=PropertyMock, return_value=old_labels)
    with browser_sends:
        at.button(key=f"runs_del_{rid}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="runs_sel").value == [rid]  # an id, still selected, under its new name
    assert at.multiselect(key="runs_sel").values == ["renamed run — distill, 2025-03-01 12:01"]
    assert any("for good" in w for w in warnings(at))
    at.button(key=f"runs_yes_{rid}").click().run()
    assert not at.exception and not (store.root / rid).exists()


def test_a_markdown_run_name_is_shown_as_text(store):
    """A name other users see must not make their browsers fetch an image or show a live link."""
    rid = ids_by_name(store)["KD alpha 0.9"]
    name = "![x](http://127.0.0.1:9/t.png) [Click to log in](http://127.0.0.1:9/login) **bold**"
    at = run_page({"sel": rid})
    at.text_input(key=f"runs_name_{rid}").set_value(name)
    at.button(key=f"runs_rename_{rid}").click().run()
    saved = at.success[0].value
    at.button(key=f"runs_del_{rid}").click().run()
    expander = at.get("expander")[0].proto.label
    markdown = [saved, next(w.value for w in at.warning if "for good" in w.value), expander]
    for text in markdown:
        assert "![x](" not in text and "](http" not in text and "**bold**" not in text, text
        assert name in shown(text), text  # every character is still there for the reader
    assert f"“{name}”" in shown(markdown[0]) and f"Delete “{name}” for good?" in shown(markdown[1])


def test_rename_to_an_empty_name_is_refused(store):
    rid = ids_by_name(store)["Teacher CNN"]
    at = run_page({"sel": rid})
    at.text_input(key=f"runs_name_{rid}").set_value("   ")
    at.button(key=f"runs_rename_{rid}").click().run()
    assert [e.value for e in at.error] == ["Could not rename: run name must not be empty"]
    assert RunStore(store.root).load(rid).name == "Teacher CNN"


def test_empty_folder_shows_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "none"))
    at = run_page()
    assert not at.exception and "No saved runs yet" in at.info[0].value


# ----------------------------------------------------------------------------- hosted: two owners (two sessions)
OWNER_A, OWNER_B = "A" * 24, "B" * 24


def owner_page(owner: str, query: dict | None = None) -> AppTest:
    from kdviz.ui.owner import OWNER_KEY

    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[OWNER_KEY] = owner  # what the kdviz_owner cookie gives a browser
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture
def hosted_store(tmp_path, monkeypatch) -> tuple[RunStore, str, str]:
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("KDVIZ_HOSTED", "1")
    store = RunStore()
    mk = partial(store.save, kind="distill", config={"T": 4.0}, records=_records(1.0), reproduce="python -m kdviz distill")
    private = mk(name="A private", owner=OWNER_A, now=T0).id
    shared = mk(name="A shared", owner=OWNER_A, now=T0 + timedelta(minutes=1)).id
    store.publish(shared, owner=OWNER_A)
    return store, private, shared


def test_hosted_owner_b_cannot_see_or_change_a_private_run(hosted_store):
    store, private, shared = hosted_store
    a = owner_page(OWNER_A)
    assert set(a.dataframe[0].value["name"]) == {"A private", "A shared"}
    assert not any(str(store.root) in c.value for c in a.caption)  # no server path on the page
    b = owner_page(OWNER_B, {"sel": private})
    assert not b.exception
    assert list(b.dataframe[0].value["name"]) == ["A shared"]
    assert any("no such run" in w and private in w for w in warnings(b))
    assert not [k for k in ("rename", "del", "pub") if any(k in str(btn.key) for btn in b.button)]
    assert b.multiselect(key="runs_sel").value == [] and not b.get("download_button")


def test_hosted_owner_b_may_view_a_published_run_but_not_change_it(hosted_store):
    store, private, shared = hosted_store
    b = owner_page(OWNER_B, {"sel": shared})
    assert not b.exception and b.multiselect(key="runs_sel").value == [shared]
    assert [btn.proto.label for btn in b.get("download_button")] == ["Metrics CSV", "Config JSON"]
    assert any("Published by another user" in c.value for c in b.caption)
    assert not any(str(btn.key).startswith(("runs_rename_", "runs_del_", "runs_pub", "runs_unpub")) for btn in b.button)
    a = owner_page(OWNER_A, {"sel": private})
    a.button(key=f"runs_pub_{private}").click().run()
    assert store.load(private).published
    b2 = owner_page(OWNER_B, {"sel": private})
    assert b2.multiselect(key="runs_sel").value == [private]
