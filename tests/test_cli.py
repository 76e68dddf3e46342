"""``python -m kdviz distill`` / ``teacher`` end to end on synthetic data, through ``kdviz.cli.main``."""
from __future__ import annotations

import io
import re

import pytest

from kdviz import cli
from kdviz.checkpoints import load_checkpoint, save_checkpoint
from kdviz.commands import ProgressBar, distill_table, load_bundle, parse_model
from kdviz.engine import StepRecord, TrainConfig, make_model, run_to_end, total_steps, train
from kdviz.evaluation import agreement, evaluate
from kdviz.models import ModelConfig
from kdviz.experiments.recipes import DEFAULT_TEACHER

TEACHER = ModelConfig(hidden=(64,))


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    """A small MLP teacher trained on the CLI's synthetic data, saved as a checkpoint."""
    bundle = load_bundle("synthetic")
    model = make_model(TEACHER, 5)
    run_to_end(train(model, bundle.train, TrainConfig(epochs=2, batch_size=64, lr=3e-3), device="cpu"))
    return save_checkpoint(tmp_path_factory.mktemp("t") / "teacher.pt", model, TEACHER, {"data_source": "synthetic"})


def table_rows(out: str) -> dict[str, list[str]]:
    """Rows of the printed table keyed by model name; cells split on runs of 2+ spaces."""
    rows = {}
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0].startswith(("teacher", "student")):
            rows[cells[0]] = cells
    return rows


def test_distill_is_the_default_command_and_prints_the_table(teacher_ckpt, capsys):
    code = cli.main(["--data", "synthetic", "--epochs", "1", "--teacher", str(teacher_ckpt), "--threads", "1", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.search(r"model\s+architecture\s+params\s+test acc\s+agrees w/ teacher\s+train time\s+note", out)
    rows = table_rows(out)
    assert set(rows) == {"teacher", "student (labels only)", "student (distilled)"}
    # the teacher row against an independent evaluation of the checkpoint
    teacher, _, _ = load_checkpoint(teacher_ckpt)
    bundle = load_bundle("synthetic")
    assert rows["teacher"][1] == "MLP 784-64-10"
    assert rows["teacher"][3] == f"{100 * evaluate(teacher, bundle.test).accuracy:.2f}%"
    assert rows["teacher"][4] == "—" and "loaded from" in rows["teacher"][-1]
    scratch, distilled = rows["student (labels only)"], rows["student (distilled)"]
    assert scratch[1] == distilled[1] == "MLP 784-128-10" and scratch[2] == distilled[2] == "101,770"
    assert all(re.fullmatch(r"\d+\.\d\d%", row[i]) for row in (scratch, distilled) for i in (3, 4))
    assert re.fullmatch(r"\d+\.\d+ s", distilled[5])
    # tqdm progress bars on stderr, finishing at 100% (all steps) for each student
    steps = total_steps(len(bundle.train), TrainConfig(epochs=1, batch_size=64))
    for name in ("scratch", "distilled"):
        assert re.search(rf"{name}\s*: 100%\|#+\| {steps}/{steps} .*loss \d+\.\d{{3}}", err), err


def test_distill_rows_match_a_direct_run_from_the_same_seed(teacher_ckpt, capsys):
    code = cli.main(["distill", "--data", "synthetic", "--epochs", "1", "--teacher", str(teacher_ckpt), "--seed", "3",
                     "--student", "mlp:32", "--device", "cpu"])
    out, _ = capsys.readouterr()
    assert code == 0
    bundle = load_bundle("synthetic")
    teacher, _, _ = load_checkpoint(teacher_ckpt)
    student = make_model(ModelConfig(hidden=(32,)), 3)
    run_to_end(train(student, bundle.train, TrainConfig(epochs=1, batch_size=64, lr=1e-3, seed=3, log_every=20), device="cpu"))
    row = table_rows(out)["student (labels only)"]
    assert row[3] == f"{100 * evaluate(student, bundle.test).accuracy:.2f}%"
    assert row[4] == f"{100 * agreement(student, teacher, bundle.test):.2f}%"


def test_teacher_command_trains_and_saves_a_loadable_checkpoint(tmp_path, capsys):
    out_path = tmp_path / "fast.pt"
    code = cli.main(["teacher", "--preset", "fast", "--data", "synthetic", "--out", str(out_path), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    model, cfg, meta = load_checkpoint(out_path)
    assert cfg == ModelConfig(arch="cnn", channels=(16, 32, 64))
    assert meta["preset"] == "fast" and meta["data_source"] == "synthetic"
    assert meta["test_acc"] == pytest.approx(evaluate(model, load_bundle("synthetic").test).accuracy)
    assert f"saved to {out_path}" in out and "teacher --preset fast" in meta["command"]


def test_the_teacher_command_trains_the_lean_cnn_by_default(tmp_path, capsys):
    out_path = tmp_path / "lean.pt"
    code = cli.main(["teacher", "--data", "synthetic", "--out", str(out_path), "--device", "cpu", "--threads", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    _, cfg, meta = load_checkpoint(out_path)
    assert cfg == ModelConfig(arch="cnn", channels=(16, 16, 48), cnn_layout="lean") and meta["preset"] == "lean"
    assert "teacher CNN 16-16-48 (lean)" in out and "--preset lean" in meta["command"]
    assert cli.build_parser().parse_args(["distill"]).teacher_preset == "lean"


def test_default_teacher_is_only_written_from_mnist(capsys):
    before = DEFAULT_TEACHER.stat().st_mtime_ns if DEFAULT_TEACHER.exists() else None
    code = cli.main(["teacher", "--data", "synthetic", "--out", str(DEFAULT_TEACHER)])
    assert code == 2
    assert "must be trained on MNIST" in capsys.readouterr().err
    after = DEFAULT_TEACHER.stat().st_mtime_ns if DEFAULT_TEACHER.exists() else None
    assert after == before


@pytest.mark.parametrize("argv, message", [
    (["distill", "--student", "mlp:abc", "--data", "synthetic"], "widths must be integers"),
    (["distill", "--student", "rnn:8", "--data", "synthetic"], "use mlp:W"),
    (["distill", "--T", "0", "--data", "synthetic"], "temperature"),
    (["distill", "--teacher", "/nonexistent/t.pt", "--data", "synthetic"], "not found"),
    (["distill", "--threads", "0", "--data", "synthetic"], "--threads must be at least 1"),
    (["distill", "--T-schedule", "cosine", "--data", "synthetic"], "give T_end"),
    (["distill", "--alpha-schedule", "linear", "--alpha-end", "1.5", "--data", "synthetic"], "alpha_end=1.5"),
    (["compare", "--T-schedule", "linear", "--methods", "kd"], "give T_end"),
    (["compare", "--T-schedule", "linear", "--T-end", "-2", "--methods", "kd"], "T_end=-2.0"),
])
def test_bad_input_gets_a_clear_message_and_exit_code_2(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_progress_bar_and_table_format():
    stream = io.StringIO()
    bar = ProgressBar("run", total=10, stream=stream)
    rec = StepRecord(step=5, epoch=0.5, total=0.25, losses={}, raw={}, lr=0.1, T=None, alpha=None,
                     samples_per_s=1.0, elapsed_s=1.0, train_acc=0.5)
    bar(rec)
    assert re.search(r"run\s*:  50%\|#+\s*\| 5/10 .*loss 0\.250", stream.getvalue().split("\r")[-1])
    bar(StepRecord(**{**rec.__dict__, "step": 10, "total": 0.125, "done": True}))
    assert re.search(r"run\s*: 100%\|#+\| 10/10 .*loss 0\.125", stream.getvalue()) and stream.getvalue().endswith("\n")
    rows = [{"model": "teacher", "arch": "CNN 8", "params": 1234, "test_acc": 0.99, "agreement": None, "seconds": None, "note": ""},
            {"model": "student", "arch": "MLP 784-8-10", "params": 6370, "test_acc": 0.5, "agreement": 0.25, "seconds": 1.25,
             "note": "T=4"}]
    lines = distill_table(rows).splitlines()
    assert len(lines) == 4 and set(lines[1]) == {"-"}
    assert re.split(r"\s{2,}", lines[2]) == ["teacher", "CNN 8", "1,234", "99.00%", "—", "—"]
    assert re.split(r"\s{2,}", lines[3]) == ["student", "MLP 784-8-10", "6,370", "50.00%", "25.00%", "1.2 s", "T=4"]
    # columns line up under their headers
    assert [lines[0].index(h) for h in ("params", "test acc")] == [lines[3].index("6,370"), lines[3].index("50.00%")]


def test_parse_model():
    assert parse_model("mlp:800,800") == ModelConfig(hidden=(800, 800))
    assert parse_model("cnn:8,16") == ModelConfig(arch="cnn", channels=(8, 16))


def test_schedule_note_names_start_end_and_kind():
    from kdviz.commands import schedule_note
    from kdviz.methods import DistillConfig

    assert schedule_note(DistillConfig(T=4, alpha=0.9)) == "T=4, alpha=0.9"
    note = schedule_note(DistillConfig(T=4, alpha=0.9, T_schedule="cosine", T_end=1, alpha_schedule="linear", alpha_end=0.5))
    assert note == "T=4→1 (cosine), alpha=0.9→0.5 (linear)"
