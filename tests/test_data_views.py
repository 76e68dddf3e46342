"""Selections (transfer sets) are index views of the shared images: no copy, the right rows, the same training."""
import pytest
import torch

from kdviz import data
from kdviz.data import HIDDEN_LABEL, TensorData
from kdviz.engine import TrainConfig, make_model, run_to_end, train
from kdviz.methods.objective import DistillConfig
from kdviz.models import ModelConfig


@pytest.fixture(scope="module")
def bundle():
    return data.synthetic_bundle(n_train=200, n_test=60, seed=3)


def test_a_selection_shares_the_base_and_gathers_the_right_rows(bundle):
    base = bundle.train
    ptr = base.base.data_ptr()
    view = base.select(torch.tensor([5, 0, 199, 7, 7]))
    assert view.is_view and view.base is base.base and base.base.data_ptr() == ptr  # no copy, base untouched
    assert len(view) == 5 and torch.equal(view.y, base.y[[5, 0, 199, 7, 7]])
    idx = torch.tensor([4, 0, 2])
    assert torch.equal(view.gather(idx), base.base[view.rows[idx]])  # hand-indexed reference x[rows[idx]]
    assert torch.equal(view.images(1, 4), base.base[view.rows[1:4]])
    assert torch.equal(view.x, base.base[view.rows])  # .x materialises the selection (a copy)
    assert base.x is base.base  # the whole set: .x is the base itself


def test_transfer_sets_are_views_of_the_training_images(bundle):
    train_set = bundle.train
    for choice in ("without:3", "subset:50", "labelled:20"):
        out = data.transfer_set(train_set, choice, seed=1)
        assert out.base is train_set.base, choice
    labelled = data.labelled_plus_unlabelled(train_set, 20, seed=1)
    assert labelled.rows is None and labelled.labelled_count() == 20  # hides labels, keeps every image
    kept = labelled.select(labelled.y != HIDDEN_LABEL)  # a boolean mask selects too
    assert len(kept) == 20 and kept.base is train_set.base and torch.equal(kept.y, train_set.y[kept.rows])


def test_composed_selections_pick_the_right_rows(bundle):
    train_set = bundle.train
    first = torch.tensor([10, 3, 50, 199, 0, 42])
    second = torch.tensor([5, 1, 1, 2])
    view = train_set.select(first).select(second)
    assert torch.equal(view.rows, first[second]) and view.base is train_set.base
    assert torch.equal(view.x, train_set.x[first][second]) and torch.equal(view.y, train_set.y[first][second])
    without = data.without_digits(data.random_subset(train_set, 80, seed=2), [3])
    assert (without.y != 3).all() and torch.equal(without.x, train_set.base[without.rows])


def test_to_keeps_a_view(bundle):
    view = data.transfer_set(bundle.train, "without:3")
    moved = view.to("cpu")
    assert moved.is_view and moved.base is view.base and moved.rows is view.rows  # no copy on the same device
    assert moved.device == torch.device("cpu")
    if torch.cuda.is_available():
        on_gpu = view.to("cuda")
        assert on_gpu.is_view and on_gpu.rows.device == on_gpu.base.device
        assert torch.equal(on_gpu.gather(torch.tensor([0, 3], device="cuda")).cpu(), view.gather(torch.tensor([0, 3])))


@pytest.mark.parametrize("idx, match", [
    (torch.tensor([0, 200]), r"lie in \[0, 200\)"),
    (torch.tensor([-1]), r"lie in \[0, 200\)"),
    (torch.tensor([0.0, 1.0]), "integer"),
    (torch.tensor([[0, 1]]), "1-D"),
    (torch.ones(5, dtype=torch.bool), r"mask must have shape \[200\]"),
])
def test_bad_indices_raise_a_clear_value_error(bundle, idx, match):
    with pytest.raises(ValueError, match=match):
        bundle.train.select(idx)


def test_bad_rows_raise_a_clear_value_error():
    x, y = torch.zeros(4, 1, 28, 28), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="rows must be int64"):
        TensorData(x, y, torch.tensor([0, 1], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"rows must lie in \[0, 4\)"):
        TensorData(x, y, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="labels shape"):
        TensorData(x, torch.zeros(3, dtype=torch.long), torch.tensor([0, 1]))


def _no_materialising(monkeypatch):
    def refuse(self):
        raise AssertionError("a hot path read .x of a view (a copy of the selection)")

    whole = TensorData.x.fget
    monkeypatch.setattr(TensorData, "x", property(lambda self: refuse(self) if self.is_view else whole(self)))


@pytest.mark.parametrize("jitter", [0, 2])
def test_training_on_a_view_never_copies_it_and_matches_the_copy(bundle, monkeypatch, jitter):
    view = data.transfer_set(bundle.train, "without:3")
    copy = TensorData(view.x.clone(), view.y.clone())  # what a selection used to be
    test = data.random_subset(bundle.test, 30)  # the live test set is a view too
    test_copy = TensorData(test.x.clone(), test.y.clone())
    cfg = TrainConfig(max_steps=12, batch_size=16, eval_every=6, jitter=jitter, seed=4)
    teacher = make_model(ModelConfig(hidden=(32,)), seed=1)
    results = []
    _no_materialising(monkeypatch)
    for train_set, test_set in ((copy, test_copy), (view, test)):
        student = make_model(ModelConfig(hidden=(16,)), seed=2)
        recs = run_to_end(train(student, train_set, cfg, teacher=teacher, distill=DistillConfig(T=4.0, alpha=0.7),
                                test=test_set, device="cpu"))
        results.append((student.state_dict(), [(r.total, r.test_acc) for r in recs]))
    (w_copy, r_copy), (w_view, r_view) = results
    assert r_copy == r_view
    assert all(torch.equal(w_copy[k], w_view[k]) for k in w_copy)


def test_mapped_mnist_transfer_sets_share_the_mapping(tmp_path, monkeypatch):
    import struct

    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 10)):
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.numpy().tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + (torch.arange(n) % 10).to(torch.uint8).numpy().tobytes())
    train_set = data.load_mnist(tmp_path, download=False).train
    ptr = train_set.base.data_ptr()
    view = data.transfer_set(train_set, "without:3")
    assert view.base.data_ptr() == ptr and len(view) == 18
    assert torch.equal(view.gather(torch.arange(18)), train_set.x[train_set.y != 3])
    assert train_set.base.dtype == torch.uint8 and view.gather(torch.arange(2)).dtype == torch.float32  # bytes, decoded on read


# ----------------------------------------------------------------------------- a uint8 base (MNIST) decodes on read
def _pixels(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 1, 28, 28]`` uint8 with every byte value 0..255 present."""
    px = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    px.view(-1)[:256] = torch.arange(256, dtype=torch.uint8)
    return px


def _by_hand(px: torch.Tensor) -> torch.Tensor:
    """The reference, written out (not the function under test): (x/255 − mean)/std in float32."""
    return (px.float() / 255 - data.MNIST_MEAN) / data.MNIST_STD


def test_a_uint8_base_decodes_to_exactly_the_normalised_float32():
    px = _pixels(40)
    ref = _by_hand(px)
    whole = TensorData(px, torch.arange(40) % 10)
    assert whole.x.dtype == torch.float32 and torch.equal(whole.x, ref)  # bit for bit, not allclose
    idx = torch.tensor([39, 0, 7, 7, 21])
    assert torch.equal(whole.gather(idx), ref[idx]) and torch.equal(whole.images(3, 9), ref[3:9])
    assert torch.equal(whole.images(5, 6), ref[5:6])  # one image, as the pages read it
    view = whole.select(torch.tensor([5, 0, 39, 7, 7, 12])).select(torch.tensor([4, 1, 2, 5]))  # composed
    rows = torch.tensor([5, 0, 39, 7, 7, 12])[[4, 1, 2, 5]]
    assert view.base is px and torch.equal(view.x, ref[rows])
    assert torch.equal(view.gather(torch.tensor([3, 0])), ref[rows[[3, 0]]]) and torch.equal(view.images(1, 3), ref[rows[1:3]])
    assert px.dtype == torch.uint8 and torch.equal(px, _pixels(40))  # decoding never writes the base
    assert torch.equal(data.normalise(px), ref)  # the one definition, re-exported by kdviz.data


def test_the_byte_table_used_off_the_cpu_holds_the_cpu_values():
    from kdviz import tensordata

    px = _pixels(8, seed=1)
    table = tensordata._table(torch.device("cpu"))
    assert table.dtype == torch.float32 and torch.equal(table[px.long()], _by_hand(px))


def test_a_float_base_is_read_as_it_is_and_other_dtypes_are_refused():
    x = torch.randn(6, 1, 28, 28)
    whole = TensorData(x, torch.zeros(6, dtype=torch.long))
    assert whole.x is x and torch.equal(whole.gather(torch.tensor([2, 1])), x[[2, 1]])
    with pytest.raises(ValueError, match="uint8 pixels or floating point"):
        TensorData(torch.zeros(2, 1, 28, 28, dtype=torch.int32), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="expects uint8"):
        data.normalise(x)


@pytest.mark.parametrize("jitter", [0, 2])
def test_training_on_a_uint8_base_matches_its_float32_copy(monkeypatch, jitter):
    px, y = _pixels(120, seed=2), torch.arange(120) % 10
    as_bytes = data.without_digits(TensorData(px, y), [3])
    as_floats = data.without_digits(TensorData(_by_hand(px), y), [3])  # what the float32 cache held
    test_bytes, test_floats = TensorData(px[:30], y[:30]), TensorData(_by_hand(px[:30]), y[:30])
    cfg = TrainConfig(max_steps=10, batch_size=16, eval_every=5, jitter=jitter, seed=4)
    teacher = make_model(ModelConfig(hidden=(32,)), seed=1)
    monkeypatch.setattr(TensorData, "x", property(lambda self: pytest.fail("a hot path decoded every image (.x)")))
    results = []
    for train_set, test_set in ((as_floats, test_floats), (as_bytes, test_bytes)):
        student = make_model(ModelConfig(hidden=(16,)), seed=2)
        recs = run_to_end(train(student, train_set, cfg, teacher=teacher, distill=DistillConfig(T=4.0, alpha=0.7),
                                test=test_set, device="cpu"))
        results.append((student.state_dict(), [(r.total, r.test_acc) for r in recs]))
    (w_f, r_f), (w_b, r_b) = results
    assert r_f == r_b and all(torch.equal(w_f[k], w_b[k]) for k in w_f)
