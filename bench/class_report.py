"""How long the class report takes for a large class, and where it was written.

Run from the repository root with ``.venv/bin`` on PATH and ``MNIST_SAMPLE_ARCHIVE`` set (the training checks
run on the real sample):

    python bench/class_report.py [--students 5000] [--out FOLDER]

It builds the synthetic class of ``tests/grading/synthetic_class.py`` (200 ``04_mnist_sgd`` submissions from
the mutant catalog: the hidden checks run once per mutant), repeats it under new ids up to ``--students``,
and prints the seconds ``class_insights`` (counting) and ``write_class_report`` (counting, both figures,
the page, the CSV and the JSON) take, with the size of each file written.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "grading"))

from synthetic_class import catalog_reports, scaled, synthetic_class  # noqa: E402

from autograder.data import ARCHIVE_ENV_VAR, provision_mnist_sample  # noqa: E402
from autograder.grading.class_insights import class_insights  # noqa: E402
from autograder.grading.class_report import write_class_report  # noqa: E402

BASE_CLASS = 200


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=5000, help="submissions in the class (default 5000)")
    parser.add_argument("--out", type=Path, help="course folder to write reports/ into (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="class-report-") as home, mock.patch.dict(os.environ, {"FASTAI_HOME": home}):
        archive = os.environ.get(ARCHIVE_ENV_VAR)
        if not archive:
            parser.error(f"set {ARCHIVE_ENV_VAR} to the MNIST sample: the training checks need it")
        provision_mnist_sample(archive, home=Path(home))
        start = time.perf_counter()
        base = synthetic_class(*catalog_reports(), size=BASE_CLASS)
        checks = time.perf_counter() - start
        batch = scaled(base.batch, math.ceil(args.students / BASE_CLASS))
        batch.submissions[:] = batch.submissions[: args.students]
        start = time.perf_counter()
        class_insights(batch)
        counting = time.perf_counter() - start
        out = args.out or Path(home) / "course"
        start = time.perf_counter()
        written = write_class_report(batch, out)
        writing = time.perf_counter() - start
        figures = {"students": len(batch.submissions), "checks_once_per_mutant_s": checks, "class_insights_s": counting,
                   "write_class_report_s": writing}
        for name, value in figures.items():
            print(f"{name:28s} {value:,.2f}" if isinstance(value, float) else f"{name:28s} {value:,}")
        for path in (written.page, written.csv, written.json):
            print(f"{path.name:28s} {path.stat().st_size / 1024:,.0f} KiB" + (f"  {path}" if args.out else ""))
    return figures


if __name__ == "__main__":
    main()
