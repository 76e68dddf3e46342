"""Temperature lab page (app_pages/temperature.py) run alone through Streamlit's AppTest on synthetic data."""
from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from apptools import rendered

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "app_pages" / "temperature.py"


@pytest.fixture
def page(monkeypatch):
    monkeypatch.setenv("KDVIZ_DATA_SOURCE", "synthetic")
    monkeypatch.setenv("KDVIZ_DEVICE", "cpu")
    monkeypatch.delenv("KDVIZ_HOSTED", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine's cores are shared; the quick teacher is tiny anyway
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    assert not at.exception, at.exception
    yield at
    torch.set_num_threads(threads)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def latex(at) -> str:
    return "\n".join(e.value for e in at.latex)


def errors(at) -> str:
    return "\n".join(rendered(e.value) for e in at.error)  # as the reader sees them (typed text is escaped)


def test_renders_with_key_widgets(page):
    for kind, key in [("slider", "temp_T"), ("toggle", "temp_log"), ("button", "temp_random"),
                      ("text_input", "calc_teacher"), ("text_input", "calc_student"), ("number_input", "calc_label"),
                      ("number_input", "calc_T"), ("number_input", "calc_alpha")]:
        assert getattr(page, kind)(key=key) is not None
    assert page.slider(key="temp_T").min == 0.5 and page.slider(key="temp_T").max == 50.0
    assert len(page.get("file_uploader")) == 1
    assert [c.key for c in page.get("plotly_chart")] == ["temp_chart", "calc_divergences_chart"]
    assert not page.error


def test_calculator_defaults_show_the_reference_numbers(page):
    m = metrics(page)
    assert (m["KD = T²·KL"], m["CE"], m["total"]) == ("0.0199", "0.4644", "0.2422")
    text = latex(page)
    assert r"0.5065,\ 0.3072,\ 0.1863" in text
    assert r"-0.7318,\ -1.2318,\ -1.4818" in text
    assert "= 0.2422" in text


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("calc_student", "1.5, 0.5", "does not match"),
        ("calc_student", "1.5, abc, 0", "could not read 'abc'"),
        ("calc_teacher", "3", "at least 2 classes"),
        ("calc_T", 0.0, "temperature T must be"),
        ("calc_alpha", 1.5, "alpha must lie in"),
        ("calc_label", 3, "labels out of range"),
    ],
)
def test_bad_calculator_input_shows_error_and_page_keeps_working(page, key, value, message):
    widget = page.text_input(key=key) if key in ("calc_teacher", "calc_student") else page.number_input(key=key)
    widget.set_value(value).run()
    assert not page.exception
    assert message in errors(page)
    assert "total" not in metrics(page)  # no stale result
    assert len(page.get("plotly_chart")) == 1  # the rest of the page still renders


def test_calculator_other_inputs_recompute(page):
    page.text_input(key="calc_teacher").set_value("0, 0, 0, 0")
    page.text_input(key="calc_student").set_value("0, 0, 0, 0")
    page.number_input(key="calc_label").set_value(2).run()
    m = metrics(page)
    assert m["KD = T²·KL"] == "0.0000" and m["CE"] == "1.3863"  # log 4 for a uniform 4-class student


def test_temperature_slider_changes_entropy(page):
    before = metrics(page)
    page.slider(key="temp_T").set_value(20.0).run()
    after = metrics(page)
    assert "Entropy at T = 20" in after and "Entropy at T = 4" in before
    assert float(after["Entropy at T = 20"].split()[0]) >= float(before["Entropy at T = 4"].split()[0])
    page.toggle(key="temp_log").set_value(True).run()
    assert not page.exception


def captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions if c]


def test_gallery_and_random_pick(page):
    assert any(c.startswith("test image #") for c in captions(page))
    gallery = [b for b in page.button if b.key and b.key.startswith("temp_pick_")]
    assert len(gallery) == 10  # one example per digit
    gallery[3].click().run()
    idx = int(gallery[3].key.rsplit("_", 1)[1])
    assert any(c.startswith(f"test image #{idx},") for c in captions(page))
    page.button(key="temp_random").click().run()
    assert not page.exception and any(c.startswith("test image #") for c in captions(page))


def test_upload_valid_digit_and_garbage(page):
    im = Image.new("L", (120, 120), 255)
    ImageDraw.Draw(im).line([(60, 10), (60, 110)], fill=0, width=8)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    page.file_uploader(key="temp_upload").set_value(("one.png", buf.getvalue(), "image/png")).run()
    assert not page.exception and not page.error
    assert any(c.startswith("your upload (120×120 PNG, inverted") for c in captions(page))
    page.file_uploader(key="temp_upload").set_value(("fake.png", b"not an image at all", "image/png")).run()
    assert not page.exception
    assert "That upload cannot be used: not a PNG or JPEG" in errors(page)
    assert metrics(page)["total"] == "0.2422"  # the rest of the page is unaffected


def test_stability_demo(page):
    page.toggle(key="temp_stability").set_value(True).run()
    m = metrics(page)
    assert m["KL(p ‖ p) via log(softmax)"] == "nan"
    assert m["KL(p ‖ p) via log_softmax"] == "0"


def test_inside_the_app(page, monkeypatch, tmp_path):
    monkeypatch.setenv("KDVIZ_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("KDVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("app_pages/temperature.py").run()
    assert not at.exception, at.exception
    assert metrics(at)["total"] == "0.2422"


def test_tutorial_note_recomputes_the_rounding(page):
    table = next(d.value for d in page.dataframe if "KD = T²·KL" in d.value.columns)  # the rounding table
    assert list(table["KD = T²·KL"]) == ["0.0199", "0.0193", "0.0186", "0.0153", "0.0153"]
    assert list(table["total"]) == ["0.2422", "0.2418", "0.2415", "0.2398", "0.2399"]
    assert list(table["log p − log q"])[0] == "+0.0516, +0.0516, -0.1984"  # exact
    assert list(table["log p − log q"])[3] == "+0.0504, +0.0504, -0.1996"  # what the tutorial wrote
    assert table["KL = Σ"].iloc[3] == table["KL = Σ"].iloc[-1] == "0.003825"  # its own terms add up to its 0.0153 / T²
    note = next(m.value for m in page.markdown if "Rounding explains little" in m.value)
    assert "The slip is in the log-ratios, not in the sum" in note and "Each log-ratio is 0.0012 too small" in note
    assert "0.004987 − 0.001168 = 0.003819" in note and "gives 0.0153" in note
    assert "0.5 × 0.0153 + 0.5 × 0.4644 = 0.23985" in note and "KD only drops to 0.0186" in note
    assert "mis-added" not in note


def _hand_kd_ce(teacher: list[float], student: list[float], label: int, T: float) -> tuple[str, str]:
    """T²·KL(softmax(t/T) ‖ softmax(s/T)) and CE from the definitions, in plain floats."""
    def softmax(z, t):
        e = [math.exp(v / t) for v in z]
        return [v / sum(e) for v in e]
    p, q = softmax(teacher, T), softmax(student, T)
    kd = T * T * sum(a * math.log(a / b) for a, b in zip(p, q))
    return f"{kd:.4f}", f"{-math.log(softmax(student, 1.0)[label]):.4f}"


@pytest.mark.parametrize("preset, teacher, T", [(1, [2.1, 5.8, 1.2], 2.0), (2, [math.log(v) for v in (0.05, 0.9, 0.05)], 1.0)])
def test_calculator_presets(page, preset, teacher, T):
    """The classic lesson's logits and the dog/cat soft label [0.05, 0.90, 0.05], against hand arithmetic."""
    page.button(key=f"calc_preset_{preset}").click().run()
    assert page.text_input(key="calc_student").value == "2.0, 5.0, 1.0" and page.number_input(key="calc_label").value == 1
    m = metrics(page)
    assert (m["KD = T²·KL"], m["CE"]) == _hand_kd_ce(teacher, [2.0, 5.0, 1.0], 1, T)
    if preset == 2:  # teacher logits = log p: at T = 1 the soft targets are the label itself
        assert page.number_input(key="calc_T").value == 1.0
        assert r"0.0500,\ 0.9000,\ 0.0500" in latex(page)
    page.button(key="calc_preset_0").click().run()
    assert metrics(page)["total"] == "0.2422"


# ----------------------------------------------------------------------------- settings in the URL
def _from_url(monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("KDVIZ_DATA_SOURCE", "synthetic")
    monkeypatch.setenv("KDVIZ_DEVICE", "cpu")
    monkeypatch.delenv("KDVIZ_HOSTED", raising=False)
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def warnings(at) -> list[str]:
    return [rendered(w.value) for w in at.warning]  # as the reader sees them: URL values are escaped


def test_url_sets_temperature_log_scale_and_image(monkeypatch):
    at = _from_url(monkeypatch, T="3", log="true", img="7")
    assert at.slider(key="temp_T").value == 3.0 and at.toggle(key="temp_log").value is True
    assert "Entropy at T = 3" in metrics(at)
    assert any(c.startswith("test image #7,") for c in captions(at))
    assert not [w for w in warnings(at) if "URL parameter" in w]


@pytest.mark.parametrize("raw", ["999", "abc", "0.1", "nan", "\u0663"])  # float("٣") would be 3.0
def test_bad_temperature_in_url_is_refused_with_a_warning(monkeypatch, raw):
    at = _from_url(monkeypatch, T=raw)
    refusals = [w for w in warnings(at) if "URL parameter" in w]
    assert len(refusals) == 1 and f"'T={raw}'" in refusals[0], refusals
    assert "from 0.5 to 50" in refusals[0] and "default 4.0" in refusals[0]
    assert at.slider(key="temp_T").value == 4.0 and "Entropy at T = 4" in metrics(at)
    assert [c.key for c in at.get("plotly_chart")] == ["temp_chart", "calc_divergences_chart"]  # the rest of the page renders


def test_bad_image_and_log_values_are_refused(monkeypatch):
    at = _from_url(monkeypatch, img="100000", log="maybe")
    refusals = " ".join(warnings(at))
    assert "'img=100000'" in refusals and "from 0 to 255" in refusals  # 256 synthetic test images
    assert "'log=maybe'" in refusals and "true or false" in refusals
    assert at.toggle(key="temp_log").value is False


def test_changing_settings_updates_the_url(page):
    assert "T" not in page.query_params  # defaults are left out of the URL
    page.slider(key="temp_T").set_value(12.5).run()
    assert page.query_params["T"] == "12.5"
    page.toggle(key="temp_log").set_value(True).run()
    pick = [b for b in page.button if b.key and b.key.startswith("temp_pick_")][3]  # not the default image
    pick.click().run()
    assert not page.exception
    assert page.query_params["log"] == "true"
    assert page.query_params["img"] == pick.key.rsplit("_", 1)[1] == str(page.session_state["temp_img"])
    page.slider(key="temp_T").set_value(4.0).run()
    assert "T" not in page.query_params


def test_calculator_shows_each_divergence_per_class(app_env):
    """Default calculator logits (teacher [2, 1, 0], student [1.5, 0.5, 0], T = 2): bars sum to hand-computed values."""
    import json

    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.key == "calc_divergences_chart")
    sums = {d["name"].split(" = ")[0]: sum(d["y"]) for d in chart["data"]}
    T = 2.0
    p = [math.exp(z / T) for z in (2.0, 1.0, 0.0)]
    q = [math.exp(z / T) for z in (1.5, 0.5, 0.0)]
    p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
    m = [(a + b) / 2 for a, b in zip(p, q)]
    assert sums["forward KL (KD)"] == pytest.approx(T * T * sum(a * math.log(a / b) for a, b in zip(p, q)), rel=1e-9)
    assert sums["reverse KL"] == pytest.approx(T * T * sum(b * math.log(b / a) for a, b in zip(p, q)), rel=1e-9)
    js = 0.5 * sum(a * math.log(a / c) for a, c in zip(p, m)) + 0.5 * sum(b * math.log(b / c) for b, c in zip(q, m))
    assert sums["Jensen–Shannon"] == pytest.approx(T * T * js, rel=1e-9)
    assert sums["MSE on logits"] == pytest.approx((0.25 + 0.25 + 0.0) / 3, rel=1e-9)
    at.number_input(key="calc_beta").set_value(1.0).run()
    assert any("beta must lie strictly between 0 and 1" in e.value for e in at.error)
