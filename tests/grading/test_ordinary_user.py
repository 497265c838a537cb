"""The instructor's cycle as an ordinary (non-root) user, as on a laptop or a JupyterHub: grade, regrade a
resubmission, validate, export and feedback, with the same scores as under root; and Dask workers of one host
sharing a course's fork servers as that user.

Run as root (as CI is), the CLI runs as the unprivileged user ``autograder-test`` (see ``ordinary_user.py``).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest
from ordinary_user import TEST_USER, ordinary_user, reachable_folder

from autograder.data import provision_mnist_sample
from autograder.grading.demo import write_demo_submissions
from autograder.grading.pipeline import load_results

from test_pipeline import ASSIGNMENT, WRONG_SIGN, make_course, put, solved, with_answer

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]
MNIST_ASSIGNMENT = "04_mnist_sgd"


@pytest.fixture(scope="module")
def as_user(request):
    """A function running ``autograder ARGS`` in a folder as the ordinary user, and that folder (the user's)."""
    home = reachable_folder(request, "autograder-ordinary-user-")
    user = ordinary_user(home)
    (home / "fastai").mkdir()

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        user.own(home)
        return subprocess.run(user.python("-m", "autograder.cli", *args), cwd=cwd, env=user.env(home, FASTAI_HOME=str(home / "fastai")),
                              capture_output=True, text=True, timeout=900)

    return run, home


def test_the_instructor_cycle_works_as_an_ordinary_user(as_user):
    run, home = as_user
    course = make_course(home / "course")
    put(course / "submitted", "ada", solved(course))
    put(course / "submitted", "bob", with_answer(course, "update", WRONG_SIGN))

    whoami = run("--version", cwd=course)
    assert whoami.returncode == 0, whoami.stderr

    first = run("grade", ASSIGNMENT, "-j", "2", "--cell-timeout", "60", cwd=course)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Permission denied" not in first.stdout + first.stderr
    scores = {r.student: (r.status.value, r.score) for r in load_results(course, ASSIGNMENT).submissions}
    assert scores == {"ada": ("graded", 10.0), "bob": ("graded", 0.0)}, first.stdout

    put(course / "submitted", "bob", solved(course))  # bob resubmits over nbgrader's read-only files
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", f"{TEST_USER}:{TEST_USER}", str(course)], check=True)
    second = run("grade", ASSIGNMENT, "-j", "2", "--cell-timeout", "60", cwd=course)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 unchanged (skipped), 1 changed since its last grade (regraded)" in second.stdout, second.stdout
    assert {r.student: r.score for r in load_results(course, ASSIGNMENT).submissions} == {"ada": 10.0, "bob": 10.0}

    exported = run("export", ASSIGNMENT, cwd=course)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert "bob" in (course / "exports" / ASSIGNMENT / "grades.csv").read_text()
    feedback = run("feedback", ASSIGNMENT, cwd=course)
    assert feedback.returncode == 0, feedback.stdout + feedback.stderr
    assert (course / "feedback" / "bob" / ASSIGNMENT / "feedback.html").is_file()
    validated = run("validate", "--assignment", ASSIGNMENT, cwd=course)
    assert validated.returncode == 0 and "ok" in validated.stdout, validated.stdout + validated.stderr
    if os.geteuid() == 0:
        owners = {path.stat().st_uid for path in (course / "autograded").rglob("*")}
        assert owners == {pwd.getpwnam(TEST_USER).pw_uid}, "everything was written by the ordinary user"


def test_the_mnist_lesson_grades_as_an_ordinary_user(as_user, mnist_folder):
    """``04_mnist_sgd`` reads the real sample in the kernel (staged for the batch, hard-linked in the namespace
    sandbox) and trains in the checks: as the ordinary user, the demo's ``ada`` gets full marks and ``grace``
    half, as under root."""
    run, home = as_user
    course = make_course(home / "course-mnist")
    provision_mnist_sample(mnist_folder, home=home / "fastai")
    demo = home / "demo-mnist"
    write_demo_submissions(course, MNIST_ASSIGNMENT, demo)
    incoming = home / "incoming-mnist"
    for student in ("ada", "grace"):
        shutil.copytree(demo / student, incoming / student)
    graded = run("grade", MNIST_ASSIGNMENT, "--input", str(incoming), "-j", "2", "--cell-timeout", "120", cwd=course)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    results = load_results(course, MNIST_ASSIGNMENT).submissions
    assert {r.student: (r.status.value, r.score, r.max_score) for r in results} == {
        "ada": ("graded", 20.0, 20.0), "grace": ("graded", 10.0, 20.0)}, graded.stdout


DASK_SCRIPT = """
import json, sys
from pathlib import Path
from distributed import Client, LocalCluster
from autograder.grading.executors import DaskExecutor
from autograder.grading.host_share import host_folder
from autograder.grading.pipeline import GradeOptions, grade
from autograder.grading.worker import Limits

def kept(dask_worker):
    from autograder.grading.dask_plugin import worker_courses
    return [{"borrowed": c.borrowed, "servers": c.server_pids(), "base": str(c.base)} for c in worker_courses(dask_worker).courses()]

if __name__ == "__main__":
    course, incoming = Path(sys.argv[1]), Path(sys.argv[2])
    limits = Limits(cell_timeout=60, cpu_seconds=300, memory_mb=4096, wall_seconds=600)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster, Client(cluster) as client:
        batch = grade(course, sys.argv[3], incoming, GradeOptions(executor=DaskExecutor(client), limits=limits))
        courses = list(client.run(kept).values())
    print(json.dumps({"scores": {r.student: [r.status.value, r.score] for r in batch.submissions}, "courses": courses,
                      "host": str(host_folder())}))
"""


def test_the_dask_workers_of_a_host_share_fork_servers_as_an_ordinary_user(request):
    pytest.importorskip("distributed")
    home = reachable_folder(request, "autograder-ordinary-dask-")
    user = ordinary_user(home)
    (home / "fastai").mkdir()
    course = make_course(home / "course")
    incoming = home / "incoming"
    for student in ("ada", "cy"):
        put(incoming, student, solved(course))
    for student in ("bob", "dee"):
        put(incoming, student, with_answer(course, "update", WRONG_SIGN))
    (home / "on_dask.py").write_text(DASK_SCRIPT)
    user.own(home)
    done = subprocess.run(user.python(str(home / "on_dask.py"), str(course), str(incoming), ASSIGNMENT), cwd=home,
                          env=user.env(home, FASTAI_HOME=str(home / "fastai")), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["scores"] == {"ada": ["graded", 10.0], "bob": ["graded", 0.0], "cy": ["graded", 10.0], "dee": ["graded", 0.0]}
    assert found["host"].endswith(f"autograder-host-{user.uid}")
    (owner,), (borrower,) = sorted(found["courses"], key=lambda courses: [course["borrowed"] for course in courses])
    assert not owner["borrowed"] and borrower["borrowed"], found["courses"]
    assert len(owner["servers"]) == 3 and borrower["servers"] == owner["servers"]
    assert borrower["base"] == owner["base"] and Path(owner["base"]).parent.parent == Path(found["host"])
