import pytest
import torch

from kdviz.models import ModelConfig, build_model, feature_shapes, param_count, size_mb


def test_mlp_shapes_and_features():
    model = build_model(ModelConfig("mlp", hidden=(64, 32), dropout=0.1))
    logits, feats = model(torch.randn(5, 1, 28, 28))
    assert logits.shape == (5, 10)
    assert {k: tuple(v.shape) for k, v in feats.items()} == {"hidden1": (5, 64), "hidden2": (5, 32)}


def test_cnn_shapes_and_features():
    model = build_model(ModelConfig("cnn", channels=(8, 16, 24)))
    logits, feats = model(torch.randn(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    assert tuple(feats["stage1"].shape) == (3, 8, 14, 14)
    assert tuple(feats["stage2"].shape) == (3, 16, 7, 7)
    assert tuple(feats["stage3"].shape) == (3, 24, 3, 3)
    assert feature_shapes(model)["pooled"] == (24,)


def test_logits_are_raw_not_log_probabilities():
    model = build_model(ModelConfig("mlp", hidden=(16,)))
    with torch.no_grad():
        logits, _ = model(torch.randn(8, 1, 28, 28) * 5)
    # log-probabilities would all be <= 0 and logsumexp to 0
    assert not torch.allclose(torch.logsumexp(logits, -1), torch.zeros(8), atol=1e-3)


def test_param_count_and_size_by_hand():
    model = build_model(ModelConfig("mlp", hidden=(128,)))
    expected = 784 * 128 + 128 + 128 * 10 + 10
    assert param_count(model) == expected
    assert size_mb(model) == pytest.approx(expected * 4 / 1e6)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(arch="rnn"), "arch"),
        (dict(hidden=(0,)), "widths"),
        (dict(hidden=(10**6,)), "widths"),
        (dict(arch="cnn", channels=(8, 8, 8, 8)), "stages"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_model_configs(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelConfig(**kwargs)
