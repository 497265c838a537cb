"""MNIST_SAMPLE (handwritten 3s and 7s): provision it offline for fastai, and load it into tensors once.

Notebooks keep calling fastai's ``untar_data(URLs.MNIST_SAMPLE)``. fastai returns
``<FASTAI_HOME>/data/mnist_sample`` without any check when that folder exists, so provisioning means
unpacking a local archive (or copying a folder) there. Point at the local copy with the environment
variable ``MNIST_SAMPLE_ARCHIVE`` or the CLI option ``--data``.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where tensors are made: the CLI's commands that make none start without it
    import torch
    from torch import Tensor

ARCHIVE_ENV_VAR = "MNIST_SAMPLE_ARCHIVE"
FOLDER_NAME = "mnist_sample"
DIGITS = ("3", "7")
SPLITS = ("train", "valid")
EXPECTED_COUNTS = {("train", "3"): 6131, ("train", "7"): 6265, ("valid", "3"): 1010, ("valid", "7"): 1028}
CACHE_NAME = ".autograder_tensors.pt"
_CACHE_VERSION = 1


class DataError(RuntimeError):
    """The MNIST sample is missing, has the wrong layout, or its archive is unreadable."""


def fastai_home() -> Path:
    """fastai's base folder: ``$FASTAI_HOME`` if set, else ``~/.fastai`` (as fastai itself decides)."""
    return Path(os.environ.get("FASTAI_HOME", "~/.fastai")).expanduser()


def mnist_sample_dir(home: Path | None = None) -> Path:
    """Where ``untar_data(URLs.MNIST_SAMPLE)`` looks first: ``<home>/data/mnist_sample``."""
    return (home if home is not None else fastai_home()) / "data" / FOLDER_NAME


def check_layout(folder: Path, exact_counts: bool = False) -> None:
    """Raise ``DataError`` unless ``folder`` has ``train/3``, ``train/7``, ``valid/3``, ``valid/7`` of PNGs.

    With ``exact_counts``, also require the real sample's image counts (6131, 6265, 1010, 1028).
    """
    if not folder.is_dir():
        raise DataError(f"MNIST sample folder {folder} does not exist or is not a folder")
    for split in SPLITS:
        for digit in DIGITS:
            sub = folder / split / digit
            if not sub.is_dir():
                raise DataError(f"{folder} is not in the MNIST_SAMPLE layout: missing folder {split}/{digit}/")
            count = sum(1 for _ in sub.glob("*.png"))
            if count == 0:
                raise DataError(f"{sub} holds no .png images")
            expected = EXPECTED_COUNTS[(split, digit)]
            if exact_counts and count != expected:
                raise DataError(f"{sub} holds {count} images, the MNIST sample has {expected}")


def _find_sample_root(extracted: Path) -> Path:
    """The folder inside an extracted archive that holds ``train/`` and ``valid/``."""
    for candidate in [extracted, *sorted(p for p in extracted.iterdir() if p.is_dir())]:
        if (candidate / "train").is_dir() and (candidate / "valid").is_dir():
            return candidate
    raise DataError("the archive does not contain an mnist_sample folder with train/ and valid/")


def _extract_archive(archive: Path, into: Path) -> Path:
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:
                tar.extractall(into, members=_plain_members(tar, into))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(f"cannot read the archive {archive}: {error} (truncated or not a .tgz?)") from error
    return _find_sample_root(into)


def _plain_members(tar: tarfile.TarFile, into: Path) -> list[tarfile.TarInfo]:
    """The archive's members, made safe to extract into ``into``, where ``extractall`` has no ``filter``
    (Python before 3.10.12 and 3.11.4).

    The sample is plain files and folders; any other member (a link, a device), an absolute name or one that
    leads outside ``into`` is refused, as tarfile's "data" filter refuses them. Like that filter, the members
    get ordinary permissions and the extracting user as owner.

    Raises:
        tarfile.TarError: naming the first member refused.
    """
    root = os.path.realpath(into)
    members = tar.getmembers()
    for member in members:
        target = os.path.realpath(os.path.join(root, member.name))
        inside = target == root or target.startswith(root + os.sep)
        if not (member.isfile() or member.isdir()) or os.path.isabs(member.name) or not inside:
            raise tarfile.TarError(
                f"refused the member {member.name!r}: the sample is plain files and folders inside the archive")
        member.mode = 0o755 if member.isdir() else 0o644
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    return members


def provision_mnist_sample(source: str | Path | None = None, home: Path | None = None, force: bool = False) -> Path:
    """Make ``untar_data(URLs.MNIST_SAMPLE)`` work offline by placing the sample where fastai looks first.

    Args:
        source: a ``.tgz``/``.tar`` archive or an unpacked folder in the MNIST_SAMPLE layout. Defaults to
            ``$MNIST_SAMPLE_ARCHIVE``. With neither, an already provisioned folder is kept, else fastai
            downloads the sample (needs the network).
        home: fastai's base folder; defaults to ``$FASTAI_HOME`` or ``~/.fastai``.
        force: replace an existing provisioned folder.

    Returns:
        The provisioned folder ``<home>/data/mnist_sample``.

    Raises:
        DataError: the source is missing, unreadable or not in the MNIST_SAMPLE layout.
    """
    target = mnist_sample_dir(home)
    source = source if source is not None else os.environ.get(ARCHIVE_ENV_VAR) or None
    if target.is_dir() and not force:
        check_layout(target)
        return target
    if source is None:
        return _download_with_fastai(home)
    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(f"MNIST sample source {source} does not exist (set {ARCHIVE_ENV_VAR} or --data)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".provision-") as tmp:
        staging = Path(tmp)
        if source.is_dir():
            root = source if (source / "train").is_dir() else _find_sample_root(source)
            check_layout(root)
            shutil.copytree(root, staging / FOLDER_NAME)
            root = staging / FOLDER_NAME
        else:
            root = _extract_archive(source, staging)
        check_layout(root)
        if target.exists():
            shutil.rmtree(target)
        root.rename(target)
    return target


def _download_with_fastai(home: Path | None) -> Path:
    """fastai's ``untar_data`` of the sample into ``home`` (else ``$FASTAI_HOME``); the environment and fastai's
    configuration are as they were afterwards."""
    from unittest import mock

    from fastai.data.external import URLs, fastai_cfg, untar_data

    try:
        with mock.patch.dict(os.environ, {} if home is None else {"FASTAI_HOME": str(home)}):
            fastai_cfg.cache_clear()
            path = Path(untar_data(URLs.MNIST_SAMPLE))
    except Exception as error:  # noqa: BLE001 - any network or checksum failure means the same thing here
        raise DataError(
            f"no local MNIST sample was given (set {ARCHIVE_ENV_VAR} or --data) and fastai could not "
            f"download it: {error}"
        ) from error
    finally:
        fastai_cfg.cache_clear()  # read again, from the environment as it is now
    check_layout(path)
    return path


@dataclass(frozen=True)
class MnistSample:
    """The sample as tensors. Images are float32 in [0, 1].

    Attributes:
        images: ``(split, digit) -> (n, 28, 28)`` stacks, files in name order, e.g. ``images["valid", "3"]``.
    """

    images: dict[tuple[str, str], Tensor]

    def stack(self, split: str, digit: str) -> Tensor:
        """The ``(n, 28, 28)`` images of one digit in one split."""
        return self.images[split, digit]

    def xy(self, split: str) -> tuple[Tensor, Tensor]:
        """Flattened images ``(n, 784)`` (all 3s then all 7s) and labels ``(n, 1)``: 1 for a 3, 0 for a 7."""
        import torch

        threes, sevens = self.images[split, "3"], self.images[split, "7"]
        x = torch.cat([threes, sevens]).view(-1, 28 * 28)
        y = torch.cat([torch.ones(len(threes)), torch.zeros(len(sevens))]).unsqueeze(1)
        return x, y.to(x.device)

    def to(self, device: str | torch.device) -> MnistSample:
        return MnistSample({key: value.to(device) for key, value in self.images.items()})


def _read_pngs(folder: Path) -> Tensor:
    import numpy as np
    import torch
    from PIL import Image

    files = sorted(folder.glob("*.png"))
    arrays = []
    for file in files:
        with Image.open(file) as image:
            arrays.append(np.asarray(image.convert("L"), dtype=np.uint8))
    return torch.from_numpy(np.stack(arrays))


def _read_cache(cache: Path) -> dict[tuple[str, str], Tensor] | None:
    import torch

    try:
        saved = torch.load(cache, weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable cache is simply rebuilt
        return None
    if saved.get("version") != _CACHE_VERSION:
        return None
    return {(split, digit): saved[f"{split}/{digit}"] for split in SPLITS for digit in DIGITS}


def load_mnist_sample(folder: Path | None = None, device: str | torch.device = "cpu") -> MnistSample:
    """Read the sample's PNGs into tensors (cached as uint8 next to the images after the first read).

    Args:
        folder: the unpacked MNIST_SAMPLE folder; defaults to the provisioned one (see
            ``provision_mnist_sample``), provisioning it first if needed.
        device: where the returned tensors live.
    """
    import torch

    folder = Path(folder) if folder is not None else provision_mnist_sample()
    check_layout(folder)
    cache = folder / CACHE_NAME
    images = _read_cache(cache) if cache.exists() else None
    if images is None:
        images = {(split, digit): _read_pngs(folder / split / digit) for split in SPLITS for digit in DIGITS}
        payload = {f"{split}/{digit}": images[split, digit] for split, digit in images}
        try:
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"version": _CACHE_VERSION, **payload}, tmp)
            tmp.replace(cache)
        except OSError:
            pass  # a read-only data folder just means no cache
    return MnistSample({key: (value.float() / 255).to(device) for key, value in images.items()})


def synthetic_mnist(n_per_digit: int = 64, seed: int = 0) -> MnistSample:
    """A small deterministic stand-in for the sample: noisy copies of two fixed 28x28 strokes per digit.

    Same shapes, value range and label convention as the real data, and separable, so unit tests can
    train on it without the archive.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    three, seven = torch.zeros(28, 28), torch.zeros(28, 28)
    three[4:7, 8:20] = three[12:15, 10:20] = three[21:24, 8:20] = 1.0
    three[4:24, 18:21] = 1.0
    seven[4:7, 6:22] = 1.0
    for row in range(7, 24):
        col = 21 - (row - 7) * 10 // 17
        seven[row, col - 1 : col + 2] = 1.0
    images = {}
    for split in SPLITS:
        for digit, stroke in (("3", three), ("7", seven)):
            n = n_per_digit if split == "train" else max(n_per_digit // 4, 1)
            shift = torch.randint(-2, 3, (n, 2), generator=gen)
            stack = torch.stack([torch.roll(stroke, tuple(s.tolist()), dims=(0, 1)) for s in shift])
            noise = torch.rand(n, 28, 28, generator=gen) * 0.3
            images[split, digit] = (stack * 0.8 + noise).clamp(0, 1)
    return MnistSample(images)
