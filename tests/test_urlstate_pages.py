"""Shareable links: the Distill, Experiments and Feature-maps pages read their settings from the URL
(AppTest with query params on synthetic data), refuse bad values with a warning naming the
parameter (the default is used), and the lesson's steps link to them with prepared parameters."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdviz.interview.lesson import STEPS
from kdviz.urlparams import parse_params

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "app_pages"


def _open(page: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=90)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _warnings(at: AppTest) -> list[str]:
    """Warning texts without md_text's backslash escapes."""
    return [w.value.replace("\\", "") for w in at.warning]


def test_distill_link_sets_the_widgets(no_spawn):
    at = _open("distill.py", {"hidden": "32, 16", "T": "8", "alpha": "0.5", "transfer": "subset", "transfer_n": "500",
                              "epochs": "3", "seed": "7", "lr": "0.003", "batch": "64"})
    assert at.text_input(key="distill_hidden").value == "32, 16"
    assert (at.slider(key="distill_T").value, at.slider(key="distill_alpha").value) == (8.0, 0.5)
    assert at.selectbox(key="distill_transfer").value == "subset" and at.number_input(key="distill_transfer_n").value == 500
    assert at.number_input(key="distill_epochs").value == 3.0 and at.number_input(key="distill_seed").value == 7
    assert at.select_slider(key="distill_lr").value == 0.003 and at.selectbox(key="distill_batch").value == 64
    assert not _warnings(at) or all("URL parameter" not in w for w in _warnings(at))
    at.slider(key="distill_T").set_value(2.0).run()  # a change goes back into the URL
    assert at.query_params["T"] == "2.0" and at.query_params["hidden"] == "32, 16"


def test_distill_bad_values_warn_and_use_the_default(no_spawn):
    at = _open("distill.py", {"T": "abc", "transfer": "<b>x</b>", "omit": "3,11", "hidden": "16"})
    warned = " ".join(_warnings(at))
    for name in ("'T=abc'", "'transfer=", "'omit=3,11'"):
        assert name in warned, (name, warned)
    assert any("\\<b\\>" in w.value for w in at.warning)  # the author's text is shown escaped (md_text)
    assert at.slider(key="distill_T").value == 4.0 and at.selectbox(key="distill_transfer").value == "labelled"
    assert "'hidden=" not in warned  # the good one is taken
    assert at.query_params.get("T") is None  # the refused value is replaced by the default, left out of the URL


def test_distill_link_picks_a_lean_cnn_student_and_refuses_an_unknown_layout(no_spawn):
    at = _open("distill.py", {"arch": "cnn", "channels": "8, 16", "cnn_layout": "lean"})
    assert at.radio(key="distill_cnn_layout").value == "lean" and not any("cnn_layout" in w for w in _warnings(at))
    at = _open("distill.py", {"arch": "cnn", "cnn_layout": "spiral"})
    assert "'cnn_layout=spiral'" in " ".join(_warnings(at)) and at.radio(key="distill_cnn_layout").value == "classic"


def test_distill_presets_set_the_widgets_and_show_their_measurement(no_spawn):
    at = _open("distill.py", {})
    assert at.text_input(key="distill_hidden").value == "16" and at.selectbox(key="distill_transfer").value == "labelled"
    at.selectbox(key="distill_preset").set_value("no_gain").run()
    assert at.selectbox(key="distill_transfer").value == "subset" and at.number_input(key="distill_epochs").value == 10.0
    assert at.number_input(key="distill_transfer_n").value == 512  # 2,000 on MNIST; the synthetic set has 512 images
    assert any("Measured over 3 seeds" in c.value and "KD is worse here" in c.value for c in at.caption)
    assert at.query_params["transfer"] == "subset" and at.query_params["epochs"] == "10.0"


def test_experiments_link_sets_scenario_and_sweep(no_spawn):
    at = _open("experiments.py", {"kind": "few-labels", "seeds": "3", "T": "2", "n_labelled": "300",
                                  "sweep_param": "alpha", "sweep_values": "0, 0.5, 1", "sweep_seeds": "2"})
    assert at.selectbox(key="exp_kind").value == "few-labels" and at.number_input(key="exp_seeds").value == 3
    assert at.number_input(key="exp_T").value == 2.0 and at.number_input(key="exp_n_labelled").value == 300
    assert at.selectbox(key="exp_sweep_param").value == "alpha" and at.text_input(key="exp_sweep_values").value == "0, 0.5, 1"
    assert at.number_input(key="exp_sweep_seeds").value == 2
    at.selectbox(key="exp_kind").set_value("unlabelled").run()  # a new scenario starts from its own preset T
    from kdviz.experiments.scenarios import preset
    assert at.number_input(key="exp_T").value == float(preset("unlabelled").T)


def test_experiments_bad_values_warn(no_spawn):
    at = _open("experiments.py", {"kind": "nope", "seeds": "999", "sweep_values": "1;DROP TABLE!"})
    warned = " ".join(_warnings(at))
    assert "'kind=nope'" in warned and "'seeds=999'" in warned and "'sweep_values=" in warned
    assert at.selectbox(key="exp_kind").value == "omitted-digit" and at.number_input(key="exp_seeds").value == 1


def test_feature_maps_link_and_bad_value(app_env):
    at = _open("feature_maps.py", {"steps": "40", "index": "xyz"})
    assert at.number_input(key="fm_steps").value == 40
    assert any("'index=xyz'" in w for w in _warnings(at))
    at = _open("feature_maps.py", {"steps": "5"})  # below the widget's minimum of 20
    assert at.number_input(key="fm_steps").value == 300 and any("'steps=5'" in w for w in _warnings(at))


@pytest.mark.parametrize("page, prefix", [("distill.py", "distill_"), ("experiments.py", "exp_"), ("feature_maps.py", "fm_")])
def test_lesson_steps_carry_parameters_the_page_accepts(page, prefix):
    """Every lesson step's prepared parameters are valid for its page's URL schema (no warning when opened)."""
    import ast

    steps = [s for s in STEPS if s.page == page]
    if page != "feature_maps.py":
        assert steps and any(s.params for s in steps), page
    names = _schema_names(ast.parse((PAGES / page).read_text()))
    for step in steps:
        assert set(step.params) <= names, (step.title, set(step.params) - names)


def _schema_names(tree) -> set[str]:
    """String keys of the dict literals in a page's schema functions / constants (a static read: no Streamlit)."""
    import ast

    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and "schema" in node.name or isinstance(node, ast.Assign) and "SCHEMA" in ast.unparse(node.targets[0]):
            for d in ast.walk(node):
                if isinstance(d, ast.Dict):
                    out |= {k.value for k in d.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return out


def test_lesson_distill_step_opens_without_warnings(no_spawn):
    step = next(s for s in STEPS if s.page == "distill.py" and s.params)
    at = _open("distill.py", step.params)
    # the synthetic test set has 512 training images, so only transfer_n=1000 (valid on MNIST) may be refused
    assert all("'transfer_n=" in w for w in _warnings(at) if "URL parameter" in w)
    assert at.text_input(key="distill_hidden").value == step.params["hidden"]
    assert parse_params({"T": (float, 4.0, (0.5, 50.0))}, step.params)[1] == []
