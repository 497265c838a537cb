"""What ``setup.sh`` runs once in the Gradescope image, after installing the environment:
``python -m autograder.gradescope.prepare --root /autograder``.

1. provision the MNIST sample under ``source/fastai`` (from ``source/data/mnist_sample.tgz``, or downloaded from
   the zip's ``data_url`` and checked against its SHA-256) and read it into its tensor cache once;
2. build the course's gradebook (``source/course/gradebook.db``), so no submission waits for nbgrader to
   register the assignment;
3. import the grading stack once and compile the package's bytecode, so the first submission starts warm.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import importlib
import os
import tempfile
import urllib.request
from pathlib import Path

from autograder.gradescope.container import DEFAULT_ROOT, Container, ZipConfig

WARM_IMPORTS = ("torch", "fastai.vision.all", "nbgrader.apps", "nbclient", "matplotlib.font_manager")
DOWNLOAD_TIMEOUT_S = 300


class PrepareError(RuntimeError):
    """The image cannot be prepared (no MNIST sample, a download that failed or does not match its digest)."""


def download(url: str, target: Path, sha256: str | None) -> Path:
    """Fetch ``url`` to ``target``, checking its SHA-256 when given.

    Raises:
        PrepareError: the download failed or its digest differs.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
            while chunk := response.read(2**20):
                out.write(chunk)
    except OSError as error:
        raise PrepareError(f"cannot download the MNIST sample from {url}: {error}") from error
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if sha256 and digest != sha256.lower():
        partial.unlink()
        raise PrepareError(f"the MNIST sample from {url} has SHA-256 {digest}, expected {sha256}")
    partial.replace(target)
    return target


def provision(container: Container, config: ZipConfig) -> Path | None:
    """Provision the sample where fastai finds it (``$FASTAI_HOME``, set to ``source/fastai`` by setup.sh) and
    fill its tensor cache; None when the zip neither ships nor names one and the assignment does not need it.

    Raises:
        PrepareError: the assignment needs the sample and none can be had, or the archive is unreadable.
    """
    from autograder.checks.declared import assignment_needs_sample
    from autograder.data import DataError, load_mnist_sample, provision_mnist_sample

    archive = container.data_archive
    if not archive.is_file() and config.data_url:
        download(config.data_url, archive, config.data_sha256)
    if not archive.is_file():
        if assignment_needs_sample(config.assignment):
            raise PrepareError(f"{config.assignment} needs the MNIST sample; the zip neither ships it nor names a URL")
        return None
    try:
        folder = provision_mnist_sample(archive, home=container.fastai_home, force=True)
        load_mnist_sample(folder)
    except DataError as error:
        raise PrepareError(str(error)) from error
    return folder


def build_gradebook(container: Container, assignment: str) -> Path:
    """Register ``assignment`` in the shipped course's gradebook (as ``autograder grade`` does); returns it."""
    from autograder.grading.pipeline import register_assignment

    with tempfile.TemporaryDirectory(prefix="autograder-prepare-") as work:
        register_assignment(container.course, assignment, Path(work))
    return container.course / "gradebook.db"


def warm_up(container: Container, assignment: str) -> None:
    """Import the grading stack and the assignment's checks once, and compile the package's bytecode."""
    from autograder.checks.declared import check_module_of

    for name in WARM_IMPORTS:
        importlib.import_module(name)
    module = check_module_of(assignment)
    if module is not None:
        importlib.import_module(f"autograder.checks.{module}")
    compileall.compile_dir(str(container.lib), quiet=1)


def prepare(root: Path) -> None:
    """Steps 1 to 3 of the module docstring for the container at ``root``."""
    container = Container.at(root)
    config = ZipConfig.load(container.config)
    os.environ.setdefault("FASTAI_HOME", str(container.fastai_home))
    folder = provision(container, config)
    print(f"MNIST sample: {folder or 'not needed'}")
    print(f"gradebook: {build_gradebook(container, config.assignment)}")
    warm_up(container, config.assignment)
    print("grading stack imported and compiled")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Prepare the Gradescope image once (setup.sh's last step).")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the container root (default /autograder)")
    prepare(parser.parse_args(argv).root)


if __name__ == "__main__":
    main()
