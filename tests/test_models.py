import pytest
import torch
import torch.nn.functional as F

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


def test_lean_cnn_has_the_classic_feature_shapes_and_a_flattened_head():
    classic = build_model(ModelConfig("cnn", channels=(16, 16, 64)))
    lean = build_model(ModelConfig("cnn", channels=(16, 16, 64), cnn_layout="lean"))
    assert feature_shapes(lean) == feature_shapes(classic) == {"stage1": (16, 14, 14), "stage2": (16, 7, 7), "stage3": (64, 3, 3), "pooled": (64,)}
    assert lean.head.in_features == 64 * 3 * 3 and classic.head.in_features == 64
    for channels, side in (((8,), 14), ((8, 16), 7)):
        assert build_model(ModelConfig("cnn", channels=channels, cnn_layout="lean")).head.in_features == channels[-1] * side * side
    assert ModelConfig("cnn", channels=(16, 16, 64), cnn_layout="lean").label() == "CNN 16-16-64 (lean)"
    assert ModelConfig("cnn", channels=(16, 16, 64)).label() == "CNN 16-16-64"


def _bn(h, bn):  # eval-mode BatchNorm written out
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (h - bn.running_mean[None, :, None, None]) * scale[None, :, None, None] + bn.bias[None, :, None, None]


def test_lean_cnn_against_a_forward_pass_written_out():
    torch.manual_seed(0)
    model = build_model(ModelConfig("cnn", channels=(8, 16, 32), cnn_layout="lean")).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics, so a wrong order would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.data.uniform_(-1, 1)
    x = torch.randn(4, 1, 28, 28)
    (c1, b1, _), (c2, _, b2, _), (c3, _, b3, _) = (list(s) for s in model.stages)
    h1 = torch.relu(_bn(F.conv2d(x, c1.weight, stride=2, padding=1), b1))  # stride-2 conv: 28 → 14
    h2 = torch.relu(_bn(F.max_pool2d(F.conv2d(h1, c2.weight, padding=1), 2), b2))  # conv, pool, then BN and ReLU
    h3 = torch.relu(_bn(F.max_pool2d(F.conv2d(h2, c3.weight, padding=1), 2), b3))
    expected = h3.reshape(4, -1) @ model.head.weight.T + model.head.bias
    with torch.no_grad():
        logits, feats = model(x)
    torch.testing.assert_close(feats["stage1"], h1)
    torch.testing.assert_close(feats["pooled"], h3.mean(dim=(2, 3)))
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


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
        (dict(arch="cnn", cnn_layout="fancy"), "cnn_layout must be one of"),
    ],
)
def test_bad_model_configs(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelConfig(**kwargs)
