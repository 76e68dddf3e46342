"""Checkpoints load only through weights_only=True; hostile or broken files are refused clearly."""
import pickle

import pytest
import torch

from kdviz.checkpoints import CheckpointError, checkpoint_bytes, load_checkpoint, save_checkpoint
from kdviz.models import ModelConfig, build_model
from hostile_files import code_running_pickle


def test_round_trip_preserves_weights_and_config(tmp_path):
    cfg = ModelConfig("cnn", channels=(4, 8))
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "m.pt", model, cfg, {"acc": 0.5})
    loaded, cfg2, meta = load_checkpoint(path)
    assert cfg2 == cfg and meta == {"acc": 0.5}
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert not list(tmp_path.glob("*.tmp"))


def test_bytes_round_trip():
    cfg = ModelConfig("mlp", hidden=(8,))
    model, _, _ = load_checkpoint(checkpoint_bytes(build_model(cfg), cfg))
    assert model(torch.zeros(1, 1, 28, 28))[0].shape == (1, 10)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch's note on the hostile file
def test_code_running_pickle_is_refused_and_executes_nothing(tmp_path):
    target = tmp_path / "pwned.txt"
    bad = tmp_path / "evil.pt"
    bad.write_bytes(code_running_pickle(target, protocol=pickle.DEFAULT_PROTOCOL))
    # Sanity: plain pickle *would* run it (proves the file is really hostile).
    probe = tmp_path / "probe.txt"
    pickle.loads(code_running_pickle(probe))
    assert probe.exists()
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(bad)
    assert not target.exists()


def test_corrupt_and_truncated_files(tmp_path):
    cfg = ModelConfig("mlp", hidden=(8,))
    good = checkpoint_bytes(build_model(cfg), cfg)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_plain_state_dict_is_not_a_kdviz_checkpoint(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(build_model(ModelConfig("mlp", hidden=(8,))).state_dict(), path)
    with pytest.raises(CheckpointError, match="not a kdviz checkpoint"):
        load_checkpoint(path)


def test_weights_for_another_architecture_are_refused(tmp_path):
    cfg = ModelConfig("mlp", hidden=(8,))
    path = save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg)
    with pytest.raises(CheckpointError, match="MLP 784-16-10 was expected"):
        load_checkpoint(path, expect=ModelConfig("mlp", hidden=(16,)))
    # A config that lies about its weights is caught when loading the state_dict.
    obj = torch.load(path, weights_only=True)
    obj["model_config"]["hidden"] = [32]
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="do not fit MLP 784-32-10"):
        load_checkpoint(path)


def test_invalid_config_in_checkpoint(tmp_path):
    cfg = ModelConfig("mlp", hidden=(8,))
    path = save_checkpoint(tmp_path / "m.pt", build_model(cfg), cfg)
    obj = torch.load(path, weights_only=True)
    obj["model_config"]["arch"] = "transformer"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_checkpoint(path)
