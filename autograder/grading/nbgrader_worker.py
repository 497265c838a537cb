"""The process that grades one submission: stock ``nbgrader autograde`` in a scratch course.

Run as ``python -m autograder.grading.nbgrader_worker COURSE ASSIGNMENT STUDENT CELL_TIMEOUT``. It writes
``COURSE/worker_result.json`` with nbgrader's success flag and log; the executed notebook is in
``COURSE/autograded/STUDENT/ASSIGNMENT/``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

RESULT_NAME = "worker_result.json"


def main(course: Path, assignment: str, student: str, cell_timeout: int) -> int:
    warnings.filterwarnings("ignore")
    from autograder.nbgrader_api import in_course, make_api

    with in_course(course):
        api = make_api(course, {"Execute": {"timeout": cell_timeout, "interrupt_on_timeout": True}})
        result = api.autograde(assignment, student, force=True, create=True)
    (course / RESULT_NAME).write_text(json.dumps({
        "success": bool(result.get("success")),
        "error": str(result.get("error") or ""),
        "log": str(result.get("log") or "")[-20000:],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])))
