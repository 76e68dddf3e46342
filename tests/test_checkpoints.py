"""Checkpoints load only through weights_only=True; hostile or broken files are refused clearly,
and everything is checked before a model is built (memory: tests/test_hosted_checkpoints.py)."""
import io
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from kdviz.checkpoints import (
    CheckpointError,
    MAX_CLASSES,
    ModelCache,
    checkpoint_bytes,
    checkpoint_payload,
    load_checkpoint,
    model_bytes,
    read_checkpoint,
    save_checkpoint,
    skeleton,
)
from kdviz.hosted import HostedLimits
from kdviz.models import ModelConfig, build_model, param_count
from hostile_files import code_running_pickle, huge_class_count, shared_storage_giant, tiny_checkpoint


def test_round_trip_preserves_weights_and_config(tmp_path):
    cfg = ModelConfig("cnn", channels=(4, 8))
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "m.pt", model, cfg, {"acc": 0.5})
    loaded, cfg2, meta = load_checkpoint(path)
    assert cfg2 == cfg and meta == {"acc": 0.5}
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert not list(tmp_path.glob("*.tmp"))


def test_a_lean_cnn_round_trips_and_its_weights_do_not_pass_for_a_classic_one(tmp_path):
    cfg = ModelConfig("cnn", channels=(8, 16, 32), cnn_layout="lean")
    path = save_checkpoint(tmp_path / "lean.pt", build_model(cfg), cfg)
    loaded, cfg2, _ = load_checkpoint(path)
    assert cfg2 == cfg and loaded.head.in_features == 32 * 3 * 3
    obj = torch.load(path, weights_only=True)
    obj["model_config"]["cnn_layout"] = "classic"  # a config that lies about its layout
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="do not fit CNN 8-16-32"):
        load_checkpoint(path)
    obj["model_config"]["cnn_layout"] = "spiral"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_checkpoint(path)


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
    with pytest.raises(CheckpointError, match="refused: it asks to load builtins.exec"):
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


# ----------------------------------------------------------------------------- checked before building
def _bytes(payload: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _payload(cfg: ModelConfig, **changes) -> dict:
    payload = checkpoint_payload(build_model(cfg), cfg)
    payload["state_dict"].update(changes)
    return payload


def test_read_checkpoint_builds_nothing_and_returns_the_files_tensors():
    cfg = ModelConfig("mlp", hidden=(8,))
    model = build_model(cfg)
    got_cfg, state, meta = read_checkpoint(checkpoint_bytes(model, cfg, {"note": "x"}))
    assert got_cfg == cfg and meta == {"note": "x"}
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_skeleton_has_the_shapes_but_no_memory():
    cfg = ModelConfig("mlp", hidden=(4096,) * 6)
    meta = skeleton(cfg)
    assert param_count(meta) == 784 * 4096 + 4096 + 5 * (4096 * 4096 + 4096) + 4096 * 10 + 10
    assert {p.device.type for p in meta.parameters()} == {"meta"}


def test_hosted_caps_apply_to_checkpoints_when_given():
    cfg = ModelConfig("mlp", hidden=(300,))
    data = checkpoint_bytes(build_model(cfg), cfg)
    assert load_checkpoint(data)[1] == cfg  # not hosted: fine
    with pytest.raises(CheckpointError, match=r"MLP 784-300-10; this hosted playground accepts networks of at most 3 layers of at most 256"):
        read_checkpoint(data, limits=HostedLimits())
    small = ModelConfig("cnn", channels=(8, 16))
    assert read_checkpoint(checkpoint_bytes(build_model(small), small), limits=HostedLimits())[0] == small


@pytest.mark.parametrize("classes, accepted", [(MAX_CLASSES, True), (MAX_CLASSES + 1, False), (10.5, False)])
def test_the_class_count_is_bounded(classes, accepted):
    cfg = ModelConfig("mlp", hidden=(4,), num_classes=int(classes))
    payload = checkpoint_payload(build_model(cfg), cfg)
    payload["model_config"]["num_classes"] = classes
    if accepted:
        assert read_checkpoint(_bytes(payload))[0].num_classes == classes
    else:
        with pytest.raises(CheckpointError, match=f"num_classes={classes!r}; a whole number from 2 to 1,000"):
            read_checkpoint(_bytes(payload))


def test_crafted_giants_are_refused_with_the_reason():
    with pytest.raises(CheckpointError, match="layers.0.weight .4096, 784. is a view into a storage of 4 bytes"):
        read_checkpoint(shared_storage_giant())
    with pytest.raises(CheckpointError, match="num_classes=50000000"):
        read_checkpoint(huge_class_count())


def test_tensors_sharing_or_overrunning_a_storage_are_refused():
    cfg = ModelConfig("cnn", channels=(4,))
    shared = _payload(cfg)
    shared["state_dict"]["stages.0.1.running_var"] = shared["state_dict"]["stages.0.1.running_mean"]
    with pytest.raises(CheckpointError, match="share one storage"):
        read_checkpoint(_bytes(shared))
    mlp = ModelConfig("mlp", hidden=(8,))
    weight = torch.randn(8, 784)
    with pytest.raises(CheckpointError, match="layers.0.bias .8,. is a view into a storage of 25,088 bytes, not 32"):
        read_checkpoint(_bytes(_payload(mlp, **{"layers.0.weight": weight, "layers.0.bias": weight[0, :8]})))
    # a storage of exactly the tensor's size, but rows that overlap (and elements never used)
    overlapping = torch.randn(8 * 784).as_strided((8, 784), (1, 1))
    with pytest.raises(CheckpointError, match=r"layers.0.weight \(8, 784\) has overlapping strides \(1, 1\)"):
        read_checkpoint(_bytes(_payload(mlp, **{"layers.0.weight": overlapping})))


def test_a_transposed_layout_is_fine_and_float16_is_upcast():
    cfg = ModelConfig("mlp", hidden=(8,))
    weight = torch.randn(784, 8)
    payload = _payload(cfg, **{"layers.0.weight": weight.t(), "head.weight": torch.randn(10, 8).half()})
    model, _, _ = load_checkpoint(_bytes(payload))
    assert torch.equal(model.layers[0].weight, weight.t()) and model.head.weight.dtype == torch.float32


def test_wrong_dtypes_and_names_are_refused():
    cfg = ModelConfig("mlp", hidden=(8,))
    with pytest.raises(CheckpointError, match="head.bias is torch.float64, expected torch.float32"):
        read_checkpoint(_bytes(_payload(cfg, **{"head.bias": torch.zeros(10, dtype=torch.float64)})))
    with pytest.raises(CheckpointError, match=r"missing \[\], unexpected \['extra'\]"):
        read_checkpoint(_bytes(_payload(cfg, extra=torch.zeros(1))))


def test_byte_limits_for_paths_bytes_and_file_objects(tmp_path):
    data = tiny_checkpoint()
    path = tmp_path / "t.pt"
    path.write_bytes(data)
    for source in (data, path):
        with pytest.raises(CheckpointError, match=f"checkpoint is {len(data):,} bytes; at most 1,000 bytes"):
            read_checkpoint(source, max_bytes=1000)
    with pytest.raises(CheckpointError, match="checkpoint is at least 1,001 bytes; at most 1,000 bytes"):
        read_checkpoint(io.BytesIO(data), max_bytes=1000)  # read no further than the limit
    assert read_checkpoint(io.BytesIO(data), max_bytes=len(data))[0].hidden == (8,)


def test_compressed_archives_are_refused():
    """torch.save never compresses; a deflated record could unpack to gigabytes."""
    src, out = zipfile.ZipFile(io.BytesIO(tiny_checkpoint())), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as packed:
        for name in src.namelist():
            packed.writestr(name, src.read(name))
    with pytest.raises(CheckpointError, match="compressed records"):
        read_checkpoint(out.getvalue())


def test_the_shipped_teachers_still_load():
    assets = Path(__file__).resolve().parents[1] / "kdviz" / "assets"
    for path in (assets / "default_teacher.pt", assets / "demo_teacher.pt"):  # channels_last CNN; float16 MLP
        model, cfg, meta = load_checkpoint(path)
        assert model(torch.zeros(2, 1, 28, 28))[0].shape == (2, 10)
        assert meta.get("data_source") == "mnist"
        # written before ModelConfig had cnn_layout: read as the classic layout they were trained with
        assert "cnn_layout" not in torch.load(path, weights_only=True)["model_config"] and cfg.cnn_layout == "classic"


# ----------------------------------------------------------------------------- ModelCache
def _saved(tmp_path, name: str, hidden: int) -> Path:
    cfg = ModelConfig("mlp", hidden=(hidden,))
    return save_checkpoint(tmp_path / name, build_model(cfg), cfg)


def test_model_cache_is_bounded_in_bytes_not_entries(tmp_path):
    a, b, c = (_saved(tmp_path, f"{n}.pt", 8) for n in "abc")
    one = (784 * 8 + 8 + 8 * 10 + 10) * 4
    cache = ModelCache(max_bytes=2 * one)
    first = cache.get(a)[0]
    assert model_bytes(first) == one and cache.get(a)[0] is first  # a hit returns the same model
    cache.get(b)
    cache.get(a)  # a is now the most recently used
    cache.get(c)  # over budget: b, the least recently used, is dropped
    assert cache.nbytes == 2 * one
    assert cache.get(a)[0] is first and cache.get(b)[0] is not None and cache.nbytes <= 2 * one


def test_model_cache_rereads_a_rewritten_file_and_skips_models_over_budget(tmp_path):
    path = _saved(tmp_path, "t.pt", 8)
    cache = ModelCache(max_bytes=10**6)
    old = cache.get(path)[0]
    cfg = ModelConfig("mlp", hidden=(16,))
    save_checkpoint(path, build_model(cfg), cfg)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert cache.get(path)[1] == cfg and cache.get(path)[0] is not old
    tiny = ModelCache(max_bytes=100)
    assert tiny.get(path)[1] == cfg and tiny.nbytes == 0  # loaded, not kept
    with pytest.raises(CheckpointError, match="not found"):
        cache.get(tmp_path / "gone.pt")
    with pytest.raises(ValueError, match="max_bytes must be >= 1, got 0"):
        ModelCache(0)
