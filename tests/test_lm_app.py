"""Language models page under AppTest: views, refusals of bad input, live distillation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdviz.lm.model import save_lm
from kdviz.lm.runs import OTHER_VOCAB, load_teacher, reindexed

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "app_pages" / "lm.py")


def _page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_page_shows_teacher_heatmaps_and_the_reduction_trap(app_env):
    at = _page()
    assert any(m.label == "Validation bits / character" for m in at.metric)
    heat = _chart(at, "lm_heat_teacher")["data"][0]
    assert heat["type"] == "heatmap" and len(heat["y"]) == 7 and heat["y"][-1].endswith("✗ masked")  # ".emma" + 2 pads
    red = _chart(at, "lm_reduction_chart")["data"]
    batchmean, masked = red[0]["y"], red[2]["y"]
    assert batchmean[-1] > batchmean[0] and max(masked) == pytest.approx(min(masked), rel=1e-4)
    assert not _errors(at)


@pytest.mark.parametrize("word, needle", [("zoë", "['ë']"), ("", "empty string"), ("a" * 20, "20 characters")])
def test_bad_words_get_a_message(app_env, word, needle):
    at = _page()
    at.text_input(key="lm_word").input(word).run()
    assert not at.exception and any(needle in e for e in _errors(at)), _errors(at)


def test_bad_sampling_temperature_and_url_values_are_refused(app_env):
    at = _page({"T": "99", "steps": "-3"})
    warnings = [w.value for w in at.warning]
    assert any("T" in w and "99" in w for w in warnings) and any("steps" in w for w in warnings)
    assert at.slider(key="lm_T").value == 2.0
    at.number_input(key="lm_temp").set_value(0.0).run()
    assert any("sampling temperature must lie in (0" in e for e in _errors(at))
    at.button(key="lm_distill_start").click().run()
    assert not at.exception and any("sampling temperature" in e for e in _errors(at))


def test_other_vocabulary_is_refused_then_the_fix_is_shown(app_env):
    at = _page()
    at.toggle(key="lm_other_vocab").set_value(True).run()
    assert any("29 tokens" in e and "27 tokens" in e for e in _errors(at))
    assert any("teacher id" in d.value.index for d in at.dataframe)
    assert not at.button(key="lm_align_start").disabled


def test_uploaded_teacher_with_another_vocabulary_is_refused(app_env, tmp_path):
    other = reindexed(load_teacher(), OTHER_VOCAB)
    data = save_lm(tmp_path / "other.pt", other.model, other.vocab).read_bytes()
    at = _page()
    at.file_uploader(key="lm_teacher_upload").set_value(("other.pt", data, "application/octet-stream")).run()
    assert not at.exception and any("cannot be used" in e and "29 tokens" in e for e in _errors(at))
    at.file_uploader(key="lm_teacher_upload").set_value(("junk.pt", b"junk", "application/octet-stream")).run()
    assert any("could not be read" in e for e in _errors(at))


def test_distil_trains_both_students_live(app_env, tick):
    at = _page()
    at.number_input(key="lm_steps").set_value(20).run()
    at.number_input(key="lm_train_n").set_value(60).run()
    at.button(key="lm_distill_start").click().run()
    tick(at, lambda a: any(m.label.endswith("val bpc") for m in a.metric), timeout=240)  # a worker process starts first (slow on a busy machine)
    names = {t["name"] for t in _chart(at, "lm_bpc_chart")["data"]}
    assert names == {"distilled (token-level KD)", "scratch"}
    assert any("alpha·KD" in t["name"] for t in _chart(at, "lm_terms_chart")["data"])
    assert {m.label for m in at.metric} >= {"teacher: val bpc", "scratch: val bpc"}
    assert any("distilled student of your last run" in c.value for c in at.caption)


def test_temperature_lab_sequence_mode_shows_batchmean_vs_per_token_mean(app_env):
    from kdviz.lm.kd import BSV_DEFAULTS, kd_batchmean, lengths_mask, parse_bsv
    from kdviz.losses import kd_loss

    at = AppTest.from_file(str(ROOT / "app_pages" / "temperature.py"), default_timeout=120).run()
    assert not at.exception
    metrics = {m.label: float(m.value) for m in at.metric if "÷" in m.label or "masked" in m.label}
    t, s = parse_bsv(BSV_DEFAULTS["teacher"], "t"), parse_bsv(BSV_DEFAULTS["student"], "s")
    mask = lengths_mask(BSV_DEFAULTS["lengths"], 2, 3)
    assert metrics["batchmean: sum ÷ B"] == pytest.approx(float(kd_batchmean(s, t, 2.0)), abs=1e-4)
    assert metrics["masked per-token mean (right)"] == pytest.approx(float(kd_loss(s, t, 2.0, mask=mask)), abs=1e-4)
    at.text_input(key="bsv_lengths").input("3").run()
    assert any("lengths: need 2 numbers" in e.value for e in at.error)
