"""Method comparison: summary statistics against hand computations, and an end-to-end run."""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from kdviz.cli import build_parser
from kdviz.experiments.compare import (
    MAPS_MESSAGE,
    compare_methods,
    format_table,
    iter_compare,
    method_config,
    parse_model_spec,
    summarise,
)
from kdviz.data import synthetic_bundle
from kdviz.engine import TrainConfig, make_model
from kdviz.models import ModelConfig

torch.set_num_threads(1)

FAKE = {
    "scratch": {"accs": [0.90, 0.92, 0.91], "wall_s": [1.0, 2.0, 3.0]},
    "kd": {"accs": [0.95, 0.96, 0.97], "wall_s": [2.0, 2.0, 2.6]},
    "fitnet": {"accs": [0.95, 0.97, 0.93], "wall_s": [4.0, 5.0, 6.0]},
    "at": {"status": MAPS_MESSAGE},
}


def test_summary_rows_match_hand_computation():
    rows = {r["method"]: r for r in summarise(FAKE)}
    assert list(rows) == ["scratch", "kd", "fitnet", "at"]
    # means and sample stds (ddof = 1) worked out by hand
    assert rows["scratch"]["mean_acc"] == pytest.approx(0.91) and rows["scratch"]["std_acc"] == pytest.approx(0.01)
    assert rows["kd"]["mean_acc"] == pytest.approx(0.96) and rows["kd"]["std_acc"] == pytest.approx(0.01)
    assert rows["fitnet"]["mean_acc"] == pytest.approx(0.95) and rows["fitnet"]["std_acc"] == pytest.approx(0.02)
    assert rows["kd"]["mean_wall_s"] == pytest.approx(2.2) and rows["fitnet"]["n"] == 3
    assert [m for m, r in rows.items() if r["best"]] == ["kd"]
    # kd − scratch = 0.05 > 2·sqrt(0.01²/3 + 0.01²/3) = 0.0163 → beyond noise
    assert rows["kd"]["diff_vs_scratch"] == pytest.approx(0.05) and rows["kd"]["noise_vs_scratch"] is False
    # fitnet − kd = −0.01, |−0.01| < 2·sqrt(0.02²/3 + 0.01²/3) = 0.0258 → within noise
    assert rows["fitnet"]["diff_vs_best"] == pytest.approx(-0.01) and rows["fitnet"]["noise_vs_best"] is True
    assert 2 * math.sqrt(0.02**2 / 3 + 0.01**2 / 3) == pytest.approx(0.0258, abs=1e-4)
    # fitnet − scratch = 0.04 > 0.0258 → beyond noise
    assert rows["fitnet"]["noise_vs_scratch"] is False
    assert rows["kd"]["noise_vs_best"] is None and rows["scratch"]["noise_vs_scratch"] is None
    assert rows["at"]["n"] == 0 and rows["at"]["mean_acc"] is None and rows["at"]["status"].startswith("not applicable")


def test_calibration_gets_its_own_verdict_vs_scratch():
    fake = {"scratch": {"accs": [0.9, 0.91, 0.9], "wall_s": [1, 1, 1], "eces": [0.050, 0.052, 0.048]},
            "kd": {"accs": [0.9, 0.9, 0.91], "wall_s": [1, 1, 1], "eces": [0.020, 0.022, 0.018]},
            "js": {"accs": [0.91, 0.9, 0.9], "wall_s": [1, 1, 1], "eces": [0.045, 0.060, 0.040]}}
    rows = {r["method"]: r for r in summarise(fake)}
    # kd − scratch = −0.030; 2·sqrt(0.002²/3 + 0.002²/3) = 0.0033 → beyond noise
    assert rows["kd"]["ece_diff_vs_scratch"] == pytest.approx(-0.030) and rows["kd"]["ece_noise_vs_scratch"] is False
    # js − scratch = −0.0017; 2·sqrt(std_js²/3 + 0.002²/3) with std_js = 0.01041 → 0.0122 → within noise
    assert rows["js"]["ece_diff_vs_scratch"] == pytest.approx(0.145 / 3 - 0.05, abs=1e-9)
    assert rows["js"]["ece_noise_vs_scratch"] is True
    assert rows["scratch"]["ece_diff_vs_scratch"] is None
    lines = format_table(list(rows.values())).splitlines()
    assert "ECE vs scratch (pts)" in lines[0]
    assert any(l.startswith("kd") and "2.00 ± 0.20         -3.00 (beyond noise)" in l for l in lines)
    assert any(l.startswith("js") and "4.83 ± 1.04         -0.17 (within noise)" in l for l in lines)


def test_table_shows_verdicts_and_not_applicable_rows():
    table = format_table(summarise(FAKE))
    lines = table.splitlines()
    assert lines[0].startswith("method")
    assert any(l.startswith("kd") and "96.00 ± 1.00" in l and "best" in l for l in lines)
    assert any(l.startswith("fitnet") and "-1.00 (within noise)" in l and "+4.00 (beyond noise)" in l for l in lines)
    assert any(l.startswith("at") and "not applicable: needs CNN feature maps" in l for l in lines)
    # aligned: every measured accuracy starts under the header's accuracy column
    start = lines[0].index("test acc")
    assert [l.index(acc) for l, acc in zip(lines[2:5], ("91.00", "96.00", "95.00"))] == [start] * 3


def test_compare_methods_end_to_end_on_synthetic_data():
    bundle = synthetic_bundle(n_train=128, n_test=64, seed=2, noise=1.5)
    teacher = make_model(ModelConfig("mlp", hidden=(32,)), 7)
    events = list(iter_compare(bundle, teacher, ModelConfig("mlp", hidden=(16,)), TrainConfig(batch_size=32),
                               ["kd", "at", "rkd_d"], [0, 1], "subset:96", "cpu"))
    rows = {r["method"]: r for r in events[-1]["rows"]}
    assert list(rows) == ["scratch", "kd", "at", "rkd_d"]  # scratch is added as the baseline
    assert rows["at"]["status"] == MAPS_MESSAGE and rows["at"]["n"] == 0
    runs = [e for e in events if e["type"] == "run"]
    assert len(runs) == 3 * 2 and events[-1]["transfer_n"] == 96
    for method in ("scratch", "kd", "rkd_d"):
        accs = [e["test_acc"] for e in runs if e["method"] == method]
        assert rows[method]["accs"] == accs and rows[method]["mean_acc"] == pytest.approx(sum(accs) / 2)
        assert rows[method]["mean_wall_s"] > 0
    # the headless function returns the same rows (same seeds → same accuracies)
    again = compare_methods(bundle, teacher, ModelConfig("mlp", hidden=(16,)), TrainConfig(batch_size=32),
                            ["kd"], [0, 1], "subset:96", "cpu")
    assert [r["accs"] for r in again] == [rows["scratch"]["accs"], rows["kd"]["accs"]]


def test_bad_input_is_rejected_clearly():
    with pytest.raises(ValueError, match="unknown method 'fitnets'"):
        method_config("fitnets")
    with pytest.raises(ValueError, match="seeds"):
        compare_methods(synthetic_bundle(64, 32), make_model(ModelConfig("mlp", hidden=(8,))), ModelConfig("mlp", hidden=(8,)),
                        TrainConfig(), ["kd"], [0, 0])
    with pytest.raises(ValueError, match="mlp:128"):
        parse_model_spec("mlp:")
    assert parse_model_spec("cnn:8,16") == ModelConfig("cnn", channels=(8, 16))
    assert method_config("sp").alpha == 0.0 and method_config("sp", plus_kd=True).alpha == 0.9


def test_compare_subcommand_is_registered():
    args = build_parser().parse_args(["compare", "--methods", "kd,at", "--seeds", "3", "--subset", "500"])
    assert (args.methods, args.seeds, args.subset) == ("kd,at", 3, 500) and callable(args.func)


@pytest.mark.mnist
@pytest.mark.skipif(not os.environ.get("KDVIZ_DATA_DIR"), reason="KDVIZ_DATA_DIR unset: real MNIST not available")
def test_compare_cli_on_real_mnist():
    cmd = [sys.executable, "-m", "kdviz", "compare", "--teacher-model", "mlp:64", "--teacher-epochs", "0.05",
           "--student", "mlp:16", "--methods", "kd,at", "--seeds", "2", "--epochs", "1", "--subset", "320"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "KDVIZ_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert "data: MNIST" in out.stdout
    assert "at       not applicable: needs CNN feature maps" in out.stdout
    assert "within noise" in out.stdout and " ± " in out.stdout
