"""The trusted checker's configuration: written by the grading worker, read by the checker (``checker.py``).

Apart from ``checker.py``, which imports torch: the process that lays out a sandbox writes this file and needs
nothing of the checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class CheckerConfig:
    """Where to listen, what the blanks are worth, and where to put the reports."""

    socket_path: str
    reports: str
    points: dict[str, float]
    device: str | None = None

    @classmethod
    def load(cls, path: Path) -> "CheckerConfig":
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))
