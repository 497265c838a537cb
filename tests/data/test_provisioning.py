"""Provisioning the MNIST sample for fastai: from an archive, from a folder, and bad inputs."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import torch

from autograder.data import DataError, check_layout, load_mnist_sample, mnist_sample_dir, provision_mnist_sample, synthetic_mnist


def _write_tiny_sample(folder: Path) -> Path:
    """A folder in the MNIST_SAMPLE layout with two 28x28 PNGs per digit and split."""
    from PIL import Image

    root = folder / "mnist_sample"
    for split in ("train", "valid"):
        for digit in ("3", "7"):
            (root / split / digit).mkdir(parents=True)
            for index in range(2):
                Image.new("L", (28, 28), color=int(digit) * 10 + index).save(root / split / digit / f"{index}.png")
    (root / "labels.csv").write_text("name,label\n")
    return root


def _tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def test_provision_from_a_folder(tmp_path):
    source = _write_tiny_sample(tmp_path / "src")
    target = provision_mnist_sample(source, home=tmp_path / "home")
    assert target == mnist_sample_dir(tmp_path / "home")
    check_layout(target)
    sample = load_mnist_sample(target)
    x, y = sample.xy("train")
    assert x.shape == (4, 784) and y.shape == (4, 1)
    assert y.flatten().tolist() == [1.0, 1.0, 0.0, 0.0]
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_provision_from_an_archive_and_keep_it(tmp_path):
    archive = _tar(_write_tiny_sample(tmp_path / "src"), tmp_path / "sample.tgz")
    target = provision_mnist_sample(archive, home=tmp_path / "home")
    (target / "marker").write_text("kept")
    assert provision_mnist_sample(archive, home=tmp_path / "home") == target
    assert (target / "marker").exists(), "an existing copy is kept unless force=True"
    provision_mnist_sample(archive, home=tmp_path / "home", force=True)
    assert not (target / "marker").exists()


def test_untar_data_returns_the_provisioned_folder(tmp_path, monkeypatch):
    from fastai.data.external import URLs, fastai_cfg, untar_data

    source = _write_tiny_sample(tmp_path / "src")
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "home"))
    fastai_cfg.cache_clear()
    try:
        target = provision_mnist_sample(source)
        assert Path(untar_data(URLs.MNIST_SAMPLE)) == target
    finally:
        fastai_cfg.cache_clear()


def test_fastais_download_leaves_fastai_home_as_it_was(tmp_path, monkeypatch):
    from fastai.data.external import fastai_cfg

    from autograder import data

    target = provision_mnist_sample(_write_tiny_sample(tmp_path / "src"), home=tmp_path / "home")  # no download needed
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "other"))
    assert data._download_with_fastai(tmp_path / "home") == target
    assert os.environ["FASTAI_HOME"] == str(tmp_path / "other")
    assert Path(fastai_cfg().path("data")) == tmp_path / "other" / "data"
    fastai_cfg.cache_clear()


def test_missing_source_names_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        provision_mnist_sample(tmp_path / "nowhere.tgz", home=tmp_path / "home")


def test_wrong_layout_names_the_missing_folder(tmp_path):
    source = _write_tiny_sample(tmp_path / "src")
    for png in (source / "valid" / "7").iterdir():
        png.unlink()
    (source / "valid" / "7").rmdir()
    with pytest.raises(DataError, match="valid/7"):
        provision_mnist_sample(source, home=tmp_path / "home")
    assert not mnist_sample_dir(tmp_path / "home").exists(), "a failed provisioning leaves nothing behind"


def test_truncated_archive_is_reported(tmp_path):
    archive = _tar(_write_tiny_sample(tmp_path / "src"), tmp_path / "sample.tgz")
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="cannot read the archive"):
        provision_mnist_sample(truncated, home=tmp_path / "home")


def test_not_an_archive_is_reported(tmp_path):
    bogus = tmp_path / "bogus.tgz"
    bogus.write_bytes(b"this is not a tar file")
    with pytest.raises(DataError, match="cannot read the archive"):
        provision_mnist_sample(bogus, home=tmp_path / "home")


def test_archive_with_paths_outside_the_target_is_refused(tmp_path):
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        data = b"x"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError):
        provision_mnist_sample(archive, home=tmp_path / "home")
    assert not (tmp_path / "escaped.txt").exists()


def test_real_sample_has_the_expected_shapes(mnist, mnist_folder):
    check_layout(mnist_folder, exact_counts=True)
    train_x, train_y = mnist.xy("train")
    valid_x, valid_y = mnist.xy("valid")
    assert train_x.shape == (12396, 784) and train_y.shape == (12396, 1)
    assert valid_x.shape == (2038, 784) and valid_y.shape == (2038, 1)
    assert int(train_y.sum()) == 6131
    assert train_x.dtype == torch.float32 and 0.0 <= float(train_x.min()) and float(train_x.max()) <= 1.0


def test_synthetic_sample_is_deterministic():
    first, second = synthetic_mnist(8, seed=1), synthetic_mnist(8, seed=1)
    assert all(torch.equal(first.images[key], second.images[key]) for key in first.images)
    x, y = first.xy("train")
    assert x.shape == (16, 784) and y.shape == (16, 1)


@pytest.fixture
def tarfile_without_filter(monkeypatch):
    """``tarfile`` as Python before 3.10.12 and 3.11.4 has it: no "data" filter, no ``filter`` argument."""
    extractall = tarfile.TarFile.extractall

    def old_extractall(self, path=".", members=None, *, numeric_owner=False, **unknown):
        if unknown:
            raise TypeError(f"extractall() got an unexpected keyword argument {next(iter(unknown))!r}")
        return extractall(self, path, members, numeric_owner=numeric_owner)

    monkeypatch.delattr(tarfile, "data_filter")
    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)


def test_an_archive_provisions_where_tarfile_has_no_filter(tmp_path, tarfile_without_filter):
    archive = _tar(_write_tiny_sample(tmp_path / "src"), tmp_path / "sample.tgz")
    target = provision_mnist_sample(archive, home=tmp_path / "home")
    x, y = load_mnist_sample(target).xy("valid")
    assert x.shape == (4, 784) and y.flatten().tolist() == [1.0, 1.0, 0.0, 0.0]
    assert all(path.stat().st_mode & 0o7777 in (0o644, 0o755) for path in target.rglob("*"))


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink", "hardlink", "fifo"])
def test_an_unsafe_member_is_refused_where_tarfile_has_no_filter(tmp_path, tarfile_without_filter, kind):
    archive = tmp_path / "evil.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo({"parent": "../../escaped.txt", "absolute": str(tmp_path / "escaped.txt")}.get(kind, "sample/link"))
        data = b"x"
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, str(tmp_path / "escaped.txt")
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "../../escaped.txt"
        elif kind == "fifo":
            info.type = tarfile.FIFOTYPE
        else:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    with pytest.raises(DataError, match="refused the member"):
        provision_mnist_sample(archive, home=tmp_path / "home")
    assert not (tmp_path / "escaped.txt").exists()
    assert not mnist_sample_dir(tmp_path / "home").exists()
