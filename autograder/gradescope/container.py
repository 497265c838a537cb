"""The Gradescope container's folders, and what the zip ships in ``source/``.

Gradescope unpacks the zip into ``<root>/source`` (``root`` is ``/autograder`` there, a temporary folder in the
tests), puts the student's files in ``<root>/submission`` and reads ``<root>/results/results.json``::

    source/
      setup.sh, run_autograder     the scripts Gradescope runs (autograder.gradescope.scripts)
      gradescope.json              the assignment, the MNIST sample's URL if any, the limits
      requirements.txt             the kit's dependencies; constraints.txt: their tested versions
      lib/autograder/              the kit's package: grading pipeline, hidden checks, reference solution
      course/                      nbgrader_config.py, source/<assignment>/, release/<assignment>/ (and, after
                                   setup, gradebook.db): the course graded in a fresh copy per submission
      data/mnist_sample.tgz        the MNIST sample, when shipped in the zip
      fastai/data/mnist_sample/    the provisioned sample (written by setup)
      environment.sh               interpreter, PYTHONPATH, FASTAI_HOME (written by setup)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_ROOT = Path("/autograder")
ZIP_CONFIG = "gradescope.json"
DATA_ARCHIVE = "mnist_sample.tgz"


@dataclass(frozen=True)
class Container:
    """The folders of one Gradescope container (see the module docstring); ``Container.at(root)`` makes one."""

    root: Path
    source: Path
    submission: Path
    results: Path
    course: Path
    lib: Path
    data_archive: Path
    fastai_home: Path
    config: Path

    @classmethod
    def at(cls, root: Path = DEFAULT_ROOT) -> Container:
        """The container whose root is ``root`` (``/autograder`` on Gradescope)."""
        root = Path(root)
        source = root / "source"
        return cls(root, source, root / "submission", root / "results", source / "course", source / "lib",
                   source / "data" / DATA_ARCHIVE, source / "fastai", source / ZIP_CONFIG)


@dataclass(frozen=True)
class ZipConfig:
    """What the zip was built for (``source/gradescope.json``).

    Attributes:
        assignment: the assignment graded, e.g. ``"04_mnist_sgd"``.
        data_url: where setup downloads the MNIST sample archive when the zip does not ship it; None: shipped
            (or not needed).
        data_sha256: the archive's SHA-256, checked after the download; None: not checked.
        limits: ``autograder.grading.worker.Limits`` fields that differ from their defaults (``cell_timeout``,
            ``cpu_seconds``, ``memory_mb``).
    """

    assignment: str
    data_url: str | None = None
    data_sha256: str | None = None
    limits: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> ZipConfig:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["assignment"], data.get("data_url"), data.get("data_sha256"), dict(data.get("limits") or {}))
