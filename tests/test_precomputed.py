"""Precomputed sweeps (kdviz.experiments.precomputed): the loader's checks, the shipped file, and the
Experiments page in hosted mode showing the precomputed result with its provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kdviz.experiments import precomputed as pc

PAGE = str(Path(__file__).resolve().parents[1] / "app_pages" / "experiments.py")
PROV = {"command": "python bench/precompute.py --values 1 4 --seeds 2", "seeds": [0, 1], "date": "2026-01-01 00:00 UTC",
        "commit": "0123456789abcdef", "device": "cpu", "data": "MNIST (mnist)"}


def _row(label: str, dist: float, scr: float, best: bool) -> dict:
    return {"value": float(label[2:]), "label": label, "distilled": {"mean": dist, "std": 0.01, "n": 2},
            "scratch": {"mean": scr, "std": 0.01, "n": 2}, "gain": None, "values": [dist, dist], "best": best, "vs_best": best}


RESULT = {"kind": "sweep", "param": "T", "scenario": "few-labels", "values": [1.0, 4.0], "seeds": [0, 1],
          "rows": [_row("T=1", 0.80, 0.78, False), _row("T=4", 0.85, 0.78, True)], "rows_digit": None,
          "data": {"source": "mnist", "name": "MNIST"}}


def test_load_checks_and_names_what_is_wrong(tmp_path):
    (tmp_path / "ok.json").write_text(json.dumps({"provenance": PROV, "result": RESULT}))
    assert pc.load("ok", tmp_path)["result"]["rows"][1]["label"] == "T=4"
    (tmp_path / "bad.json").write_text(json.dumps({"provenance": {"command": "x"}, "result": RESULT}))
    with pytest.raises(ValueError, match="lacks seeds, date, commit, device, data"):
        pc.load("bad", tmp_path)
    (tmp_path / "big.json").write_text(" " * (pc.MAX_BYTES + 1))
    with pytest.raises(ValueError, match="over the 50,000 limit"):
        pc.load("big", tmp_path)
    with pytest.raises(ValueError, match="no precomputed result 'absent'"):
        pc.load("absent", tmp_path)
    with pytest.raises(ValueError, match=r"letters, digits.*'\.\./x'"):
        pc.path_of("../x")
    assert pc.for_exercise("born-again", tmp_path) is None


def test_provenance_line_names_command_seeds_commit():
    line = pc.provenance_text(PROV)
    assert PROV["command"] in line and "2 seeds" in line and "0123456789" in line and "2026-01-01" in line


def test_the_shipped_temperature_sweep_is_small_real_and_complete():
    data = pc.for_exercise("accuracy-vs-temperature")
    assert data is not None, "bench/precompute.py has not been run: kdviz/assets/precomputed/ lacks the T sweep"
    prov, result = data["provenance"], data["result"]
    assert pc.path_of(pc.EXERCISE_FILES["accuracy-vs-temperature"]).stat().st_size < pc.MAX_BYTES
    assert "mnist" in prov["data"].lower() and "synthetic" not in prov["data"].lower()
    assert len(prov["seeds"]) >= 3 and result["param"] == "T" and len(result["rows"]) == len(result["values"]) >= 3
    for row in result["rows"]:  # each mean is the mean of its per-seed values (an independent recomputation)
        assert row["distilled"]["mean"] == pytest.approx(sum(row["values"]) / len(row["values"]))
        assert len(row["values"]) == len(prov["seeds"])


def test_hosted_experiments_page_shows_the_precomputed_sweep(app_env, monkeypatch):
    from kdviz.ui.hosted import _server_limits

    monkeypatch.setenv("KDVIZ_HOSTED", "1")
    _server_limits.clear()  # hosted mode is read once per server
    try:
        at = AppTest.from_file(PAGE, default_timeout=90).run()
        assert not at.exception, [e.value for e in at.exception]
        prov = pc.for_exercise("accuracy-vs-temperature")["provenance"]
        assert any("switched off on this shared server" in i.value for i in at.info)
        assert any(prov["command"] in c.value and str(prov["commit"])[:10] in c.value for c in at.caption)
        assert any("T=" in str(t.value) for t in at.dataframe) or len(at.get("plotly_chart")) >= 1
        assert not any(b.key and b.key.startswith("exp_ex_") for b in at.button)  # live exercises are not offered
    finally:
        _server_limits.clear()
