"""The data module through the real torchvision path, on tiny IDX files written here."""
import os
import struct
import subprocess
import sys

import pytest
import torch

from kdviz import data


def write_idx(folder, prefix, images, labels):
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    n = images.shape[0]
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.numpy().tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.numpy().tobytes())


@pytest.fixture()
def tiny_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))  # not the user's cache folder
    g = torch.Generator().manual_seed(0)
    train_x = torch.randint(0, 256, (30, 28, 28), generator=g, dtype=torch.uint8)
    test_x = torch.randint(0, 256, (12, 28, 28), generator=g, dtype=torch.uint8)
    write_idx(tmp_path, "train", train_x, (torch.arange(30) % 10).to(torch.uint8))
    write_idx(tmp_path, "t10k", test_x, (torch.arange(12) % 10).to(torch.uint8))
    return tmp_path, train_x, test_x


def test_load_mnist_reads_idx_and_normalises_once(tiny_mnist):
    root, train_x, test_x = tiny_mnist
    bundle = data.load_mnist(root, download=False)
    assert bundle.is_mnist and len(bundle.train) == 30 and len(bundle.test) == 12
    assert bundle.train.x.shape == (30, 1, 28, 28) and bundle.train.x.dtype == torch.float32
    expected = (train_x[3].float() / 255 - 0.1307) / 0.3081
    assert torch.allclose(bundle.train.x[3, 0], expected, atol=1e-6)
    assert bundle.test.y.tolist() == [i % 10 for i in range(12)]


def test_env_var_selects_root(tiny_mnist, monkeypatch):
    root, *_ = tiny_mnist
    monkeypatch.setenv("KDVIZ_DATA_DIR", str(root))
    assert data.data_root() == root
    assert data.load_data(download=False).is_mnist


def test_missing_data_falls_back_with_a_message_naming_folder_and_variable(tmp_path):
    bundle = data.load_data(tmp_path / "nowhere", download=False)
    assert bundle.source == "fallback" and "NOT MNIST" in bundle.name
    assert str(tmp_path / "nowhere") in bundle.message and "KDVIZ_DATA_DIR" in bundle.message
    assert "\n" not in bundle.message
    assert len(bundle.train) + len(bundle.test) == 1797
    assert bundle.train.x.shape[1:] == (1, 28, 28)
    assert set(bundle.train.y.unique().tolist()) == set(range(10))


def test_fallback_digits_look_like_mnist_digits():
    x = data.load_fallback().train.x
    background = (0 - data.MNIST_MEAN) / data.MNIST_STD
    # a 4-pixel black border like MNIST's 20×20 box in 28×28, and ink in the middle
    assert torch.allclose(x[:, :, :4, :], torch.full_like(x[:, :, :4, :], background), atol=1e-5)
    assert float(x[:, :, 10:18, 10:18].max()) > 2.0


def test_random_subset_is_seeded_and_exact():
    d = data.synthetic_bundle(100, 10).train
    a, b = data.random_subset(d, 17, seed=3), data.random_subset(d, 17, seed=3)
    assert len(a) == 17 and torch.equal(a.x, b.x)
    with pytest.raises(ValueError, match="subset size"):
        data.random_subset(d, 0)


def test_without_digits_removes_every_image_of_them():
    d = data.synthetic_bundle(200, 10).train
    kept = data.without_digits(d, [3, 7])
    assert not torch.isin(kept.y, torch.tensor([3, 7])).any()
    assert len(kept) == int((~torch.isin(d.y, torch.tensor([3, 7]))).sum())
    with pytest.raises(ValueError, match="0..9"):
        data.without_digits(d, [12])


def test_labelled_plus_unlabelled_hides_labels():
    d = data.synthetic_bundle(100, 10).train
    mixed = data.labelled_plus_unlabelled(d, 25, seed=1)
    assert len(mixed) == 100 and mixed.labelled_count() == 25
    shown = mixed.y != data.HIDDEN_LABEL
    assert torch.equal(mixed.y[shown], d.y[shown])


def test_random_shift_moves_images_within_bounds():
    x = torch.full((4, 1, 28, 28), -0.4242)
    x[:, :, 14, 14] = 5.0
    g = torch.Generator().manual_seed(0)
    y = data.random_shift(x, 2, g)
    assert y.shape == x.shape
    for img in y[:, 0]:
        r, c = (img == 5.0).nonzero()[0].tolist()
        assert abs(r - 14) <= 2 and abs(c - 14) <= 2
    assert torch.equal(data.random_shift(x, 0, g), x)


def test_tensor_data_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        data.TensorData(torch.zeros(3, 28, 28), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels shape"):
        data.TensorData(torch.zeros(3, 1, 28, 28), torch.zeros(2, dtype=torch.long))


@pytest.mark.skipif(not os.environ.get("KDVIZ_DATA_DIR"), reason="KDVIZ_DATA_DIR is not set: real MNIST unavailable")
def test_real_mnist_loads():
    bundle = data.load_mnist(download=False)
    assert (len(bundle.train), len(bundle.test)) == (60000, 10000)
    assert abs(float(bundle.train.x.mean())) < 0.01 and abs(float(bundle.train.x.std()) - 1) < 0.01


def test_core_imports_without_streamlit():
    """Every core module imports in a fresh interpreter without pulling in streamlit."""
    import pathlib

    package = pathlib.Path(data.__file__).parent
    modules = sorted(".".join(p.relative_to(package.parent).with_suffix("").parts) for p in package.rglob("*.py")
                     if p.stem not in ("__main__", "__init__") and "ui" not in p.relative_to(package).parts[:-1])
    assert "kdviz.runtime.manager" in modules and "kdviz.data" in modules  # subpackages too, kdviz/ui excepted
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + "assert 'streamlit' not in sys.modules, 'streamlit imported'\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=package.parent)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


# ----------------------------------------------------------------------------- data sources and transfer sets
def test_data_source_from_environment(monkeypatch):
    monkeypatch.delenv(data.DATA_SOURCE_ENV, raising=False)
    assert data.env_data_source() == "auto"
    monkeypatch.setenv(data.DATA_SOURCE_ENV, " Synthetic ")
    assert data.env_data_source() == "synthetic"
    monkeypatch.setenv(data.DATA_SOURCE_ENV, "imagenet")
    with pytest.raises(ValueError, match="KDVIZ_DATA_SOURCE must be one of .* got 'imagenet'"):
        data.env_data_source()
    with pytest.raises(ValueError, match="data source must be one of .* got 'mnist'"):
        data.load_bundle("mnist")
    assert data.load_bundle("synthetic") is data.load_bundle("synthetic")  # loaded once per process


def test_transfer_sets_select_what_their_names_say():
    train = data.synthetic_bundle().train
    labels = train.y.tolist()
    assert len(data.transfer_set(train, "subset:100")) == 100
    omitted = data.transfer_set(train, "without:3,5").y.tolist()
    assert omitted == [y for y in labels if y not in (3, 5)]  # reference: filter the labels by hand, order kept
    assert data.transfer_set(train, "labelled:50").labelled_count() == 50
    assert data.transfer_set(train, "full") is train
    assert data.transfer_set(train, data.parse_transfer("subset:7")).x.shape == (7, 1, 28, 28)  # a parsed choice too


@pytest.mark.parametrize("choice", ["full", "subset:100", "without:3", "without:0,9", "without:", "labelled:50"])
def test_transfer_size_counts_what_select_keeps(choice):
    train = data.synthetic_bundle().train
    parsed = data.parse_transfer(choice)
    assert parsed.text == choice and parsed.size(train.y) == len(parsed.select(train))


@pytest.mark.parametrize("bad", ["all", "subset:", "without:x", "labelled:-1", "full:3", "subset:0", "subset:513",
                                 "without:10", "without:0,1,2,3,4,5,6,7,8,9"])
def test_bad_transfer_names_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=f"transfer set '{bad}' is"):
        data.transfer_set(data.synthetic_bundle().train, bad)  # 512 images


@pytest.mark.parametrize("bad", ["subset:0", "subset:513", "labelled:-1", "labelled:513", "without:10"])
def test_transfer_size_refuses_what_select_refuses(bad):
    with pytest.raises(ValueError, match=f"transfer set '{bad}' is invalid"):
        data.parse_transfer(bad).size(data.synthetic_bundle().train.y)


# ----------------------------------------------------------------------------- the mapped cache file
def test_images_are_mapped_from_one_cache_file_that_writes_never_reach(tiny_mnist, tmp_path, monkeypatch):
    root, train_x, _ = tiny_mnist
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))
    first = data.load_mnist(root, download=False).train.base
    files = sorted((tmp_path / "cache").glob("train-images*.u8"))
    assert len(files) == 1 and files[0].stat().st_size == 30 * 28 * 28  # the raw bytes: N·784, not float32
    assert first.dtype == torch.uint8 and torch.equal(first[:, 0], train_x)
    first[0].fill_(123)  # a stray in-place write stays in this process (copy-on-write mapping)
    again = data.load_mnist(root, download=False).train
    assert torch.equal(again.base[0, 0], train_x[0])
    assert torch.allclose(again.x[0, 0], (train_x[0].float() / 255 - 0.1307) / 0.3081, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("train-images*.u8"))) == 1  # read, not rewritten


def test_a_stale_float_cache_of_the_old_version_is_never_read(tiny_mnist, tmp_path, monkeypatch):
    from kdviz import datafiles

    root, train_x, _ = tiny_mnist
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))
    source = datafiles.idx_path(root / "MNIST" / "raw", "train-images-idx3-ubyte")
    new = datafiles.cache_path(source)
    assert datafiles.CACHE_VERSION >= 2 and new.name.endswith(f"-v{datafiles.CACHE_VERSION}.u8")
    stale = new.with_name(new.name.replace(f"-v{datafiles.CACHE_VERSION}.u8", "-v1.f32"))  # what v1 wrote
    stale.parent.mkdir(parents=True)
    torch.full((30, 1, 28, 28), 7.5).numpy().tofile(stale)  # float32 (4·N·784 bytes: 4N images as bytes)
    bundle = data.load_mnist(root, download=False)
    assert len(bundle.train) == 30 and torch.equal(bundle.train.base[:, 0], train_x)  # the idx bytes, not the stale file
    assert new.stat().st_size == 30 * 28 * 28
    assert not stale.exists()  # nothing would read it again: its 4·N·784 bytes are given back


def test_writing_a_cache_file_keeps_other_sources_and_in_flight_writes(tiny_mnist, tmp_path, monkeypatch):
    from kdviz import datafiles

    root, *_ = tiny_mnist
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))
    source = datafiles.idx_path(root / "MNIST" / "raw", "train-images-idx3-ubyte")
    new = datafiles.cache_path(source)
    new.parent.mkdir(parents=True)
    other_source = new.parent / "t10k-images-0123456789-1-2-v2.u8"  # another source's cache
    in_flight = new.with_name(new.name + ".999.tmp")  # another process writing this very file
    for f in (other_source, in_flight):
        f.write_bytes(b"\0" * 784)
    data.load_mnist(root, download=False)
    assert new.exists() and other_source.exists() and in_flight.exists()


def test_a_changed_source_file_is_read_afresh(tiny_mnist, tmp_path, monkeypatch):
    root, *_ = tiny_mnist
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))
    data.load_mnist(root, download=False)
    other = torch.zeros(30, 28, 28, dtype=torch.uint8)
    write_idx(root, "train", other, (torch.arange(30) % 10).to(torch.uint8))
    x = data.load_mnist(root, download=False).train.x
    assert torch.allclose(x, torch.full_like(x, (0 - 0.1307) / 0.3081))


def test_gzipped_idx_files_and_an_unwritable_cache_still_load(tiny_mnist, tmp_path, monkeypatch):
    import gzip

    root, train_x, _ = tiny_mnist
    raw = root / "MNIST" / "raw"
    for path in list(raw.iterdir()):
        (raw / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(blocker / "cache"))  # cannot be created: the tensor stays private
    bundle = data.load_mnist(root, download=False)
    assert torch.allclose(bundle.train.x[5, 0], (train_x[5].float() / 255 - 0.1307) / 0.3081, atol=1e-6)


def test_a_corrupt_idx_file_falls_back_with_a_message(tiny_mnist, tmp_path, monkeypatch):
    root, *_ = tiny_mnist
    monkeypatch.setenv("KDVIZ_CACHE_DIR", str(tmp_path / "cache"))
    (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    bundle = data.load_data(root, download=False)
    assert bundle.source == "fallback" and "ValueError" in bundle.message and str(root) in bundle.message


def test_labelled_images_are_spread_over_the_first_epoch():
    """The labelled images and a training run's first-epoch order, both from the run's seed, are independent:
    before, they were the same permutation (every label in the first batches of epoch 1, none after)."""
    from kdviz.batches import shuffled_batches

    d, n, batch = data.synthetic_bundle(1200, 10).train, 120, 60
    for seed in (0, 1, 7):
        mixed = data.labelled_plus_unlabelled(d, n, seed)
        order = shuffled_batches(len(mixed), batch, 0, torch.Generator().manual_seed(seed), torch.device("cpu"))
        per_batch = [int((mixed.y[next(order)[0]] != data.HIDDEN_LABEL).sum()) for _ in range(len(mixed) // batch)]
        assert sum(per_batch) == n
        assert sum(per_batch[: n // batch]) < n / 2, per_batch  # ~n²/N = 12 expected; 120 when the streams coincided
        assert sum(1 for k in per_batch if k) > len(per_batch) / 2, per_batch  # most batches carry a label
