"""The process that grades one submission: stock ``nbgrader autograde`` in a scratch course.

Run as ``python -m autograder.grading.nbgrader_worker COURSE ASSIGNMENT STUDENT CELL_TIMEOUT MAX_OUTPUT_BYTES``. It writes
``COURSE/worker_result.json`` with nbgrader's success flag and log; the executed notebook is in
``COURSE/autograded/STUDENT/ASSIGNMENT/``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

RESULT_NAME = "worker_result.json"


AUTOGRADE_PREPROCESSORS = [
    "autograder.nbgrader_ext.CappedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
"""nbgrader's own list, with ``Execute`` replaced by ``CappedExecute`` (a cap on the notebook's output)."""


def main(course: Path, assignment: str, student: str, cell_timeout: int, max_output_bytes: int) -> int:
    warnings.filterwarnings("ignore")
    from autograder.nbgrader_api import in_course, make_api

    with in_course(course):
        api = make_api(course, {
            "Execute": {"timeout": cell_timeout, "interrupt_on_timeout": True},
            "CappedExecute": {"max_output_bytes": max_output_bytes},
            "Autograde": {"autograde_preprocessors": AUTOGRADE_PREPROCESSORS},
        })
        result = api.autograde(assignment, student, force=True, create=True)
    (course / RESULT_NAME).write_text(json.dumps({
        "success": bool(result.get("success")),
        "error": str(result.get("error") or ""),
        "log": str(result.get("log") or "")[-20000:],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
