"""What ``run_autograder`` runs for each submission: ``python -m autograder.gradescope.run --root /autograder``.

1. choose the isolation (``isolation.choose_isolation``): the namespace sandbox, or the locked-down fallback;
2. copy the prepared course (``source/course``, with its gradebook) into a fresh private folder, and the student's
   upload into the pipeline's input (``submission.stage_upload``);
3. grade it with ``autograder.grading.pipeline.grade``: the same steps, limits (``source/gradescope.json``) and
   sandbox as ``autograder grade``, one submission, one job;
4. write ``results/results.json`` (``results.gradescope_results``), and print what the instructor should know.

Nothing a submission does makes this script fail without a ``results.json``: a notebook that cannot be graded
(corrupt, of another assignment, past a limit) gets its status and reason as the output, and any failure of the
grader itself gets a ``results.json`` saying the submission was not graded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import replace
from pathlib import Path

import autograder
from autograder.gradescope.container import DEFAULT_ROOT, Container, ZipConfig
from autograder.gradescope.isolation import Isolation, choose_isolation, lock_down
from autograder.gradescope.results import failure_results, gradescope_results, status_line, write_results
from autograder.gradescope.submission import STUDENT, stage_upload

GRADER_FAILED = "The autograder failed on this submission, so it was not graded. Please tell your instructor."
UNREADABLE_UPLOAD = "Your upload could not be read, so it was not graded: {error}"


def _grade(container: Container, config: ZipConfig, isolation: Isolation, work: Path):
    """The ``SubmissionResult`` of the upload, graded in a copy of the course under ``work``."""
    from autograder.grading.pipeline import GradeOptions, grade
    from autograder.grading.worker import Limits

    course = work / "course"
    shutil.copytree(container.course, course)
    lock_down([work, course])
    incoming = stage_upload(container.submission, work / "incoming", config.assignment)
    options = GradeOptions(jobs=1, force=True, limits=replace(Limits(), **config.limits), unsafe_no_sandbox=not isolation.sandboxed)
    batch = grade(course, config.assignment, incoming, options)
    found = [result for result in batch.submissions if result.student == STUDENT]
    if len(found) != 1:
        raise RuntimeError(f"the pipeline returned {len(batch.submissions)} result(s) and none for {STUDENT!r}")
    return found[0]


def grade_upload(container: Container, started: float) -> dict:
    """``results.json``'s content for the upload in ``container`` (steps 1 to 3 of the module docstring).

    Raises:
        Exception: whatever the grader itself failed with (``run`` turns it into a results.json).
    """
    from autograder.grading.submissions import SubmissionError

    config = ZipConfig.load(container.config)
    package = Path(autograder.__file__).resolve().parent
    isolation = choose_isolation([container.source, *([package] if package.is_relative_to(container.source.resolve()) else [])])
    print(f"isolation: {isolation.description}")
    with tempfile.TemporaryDirectory(prefix="autograder-gradescope-") as tmp:
        try:
            result = _grade(container, config, isolation, Path(tmp))
        except SubmissionError as error:
            return failure_results(UNREADABLE_UPLOAD.format(error=error), time.monotonic() - started)
    print(f"{config.assignment}: {status_line(result)}; {result.score:g}/{result.max_score:g} points")
    data = gradescope_results(result, time.monotonic() - started, {"status": result.status.value, "isolation": isolation.description})
    if isolation.note:
        data["output"] = f"{data['output']}\n{isolation.note}"
    return data


def run(root: Path = DEFAULT_ROOT) -> Path:
    """Grade the submission of the container at ``root`` and write its ``results/results.json``; returns that file.

    Never raises for anything a submission does or for a failure of the grader: the file then says the
    submission was not graded, and the error goes to stdout (which Gradescope shows to instructors).
    """
    started = time.monotonic()
    container = Container.at(root)
    try:
        data = grade_upload(container, started)
    except Exception:  # noqa: BLE001 - the student must get a results.json whatever failed
        traceback.print_exc(file=sys.stdout)
        data = failure_results(GRADER_FAILED, time.monotonic() - started)
    path = write_results(data, container.results)
    print(f"wrote {path} in {time.monotonic() - started:.1f} s")
    return path


def main(argv: list[str] | None = None) -> None:
    warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")  # nbgrader's gradebook noise
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    parser = argparse.ArgumentParser(description="Grade the Gradescope submission (run_autograder's step).")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the container root (default /autograder)")
    run(parser.parse_args(argv).root)


if __name__ == "__main__":
    main()
