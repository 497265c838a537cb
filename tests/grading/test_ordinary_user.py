"""The instructor's cycle as an ordinary (non-root) user, as on a laptop or a JupyterHub: grade, regrade a
resubmission, validate, export and feedback, with the same scores as under root.

Run as root (as CI is), the test creates the unprivileged user ``autograder-test`` and runs the CLI as that user
through ``setpriv``, with an interpreter the user can read: a virtual environment made from the system's
``python3.11`` (``/usr/bin``, readable by all) that imports this environment's installed packages. Run as an
ordinary user, it runs the CLI as that user directly.
"""

from __future__ import annotations

import os
import pwd
import shutil
import site
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading.pipeline import load_results

from test_pipeline import ASSIGNMENT, WRONG_SIGN, make_course, put, solved, with_answer

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

TEST_USER = "autograder-test"
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH) and all(p.stat().st_mode & stat.S_IXOTH for p in path.resolve().parents)
    except OSError:
        return False


def _user_environment(folder: Path) -> Path:
    """A venv from the system Python that imports this environment's packages; returns its ``bin/``."""
    venv = folder / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    (purelib,) = venv.glob("lib/python3.*/site-packages")
    lines = [f"import site; site.addsitedir({folder!r})" for folder in site.getsitepackages()]
    (purelib / "autograder-environment.pth").write_text("\n".join(lines) + "\n")
    alembic = venv / "bin" / "alembic"  # nbgrader runs alembic from PATH
    alembic.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom alembic.config import main\nsys.exit(main())\n")
    alembic.chmod(0o755)
    return venv / "bin"


@pytest.fixture(scope="module")
def as_user(tmp_path_factory):
    """A function running ``autograder ARGS`` in a folder as the ordinary user, and that folder (the user's)."""
    home = tmp_path_factory.mktemp("ordinary-user")
    home.chmod(0o755)
    for parent in home.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)  # the temporary folders pytest made, under /tmp
    if os.geteuid() != 0:
        bin_dir, prefix = Path(sys.executable).parent, []
    else:
        if not (SYSTEM_PYTHON.is_file() and shutil.which("setpriv") and shutil.which("useradd")):
            pytest.skip("needs /usr/bin/python3.11, setpriv and useradd to run as an ordinary user")
        for folder in [*site.getsitepackages(), str(Path(__file__).resolve().parents[2] / "autograder")]:
            if not _readable_by_others(Path(folder)):
                pytest.skip(f"{folder} is not readable by other users (the clone lives in a private folder)")
        try:
            pwd.getpwnam(TEST_USER)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
        bin_dir = _user_environment(home)
        prefix = ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups"]
    (home / "fastai").mkdir()

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{TEST_USER}:{TEST_USER}", str(home)], check=True)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "FASTAI_HOME": str(home / "fastai"), "LANG": "C.UTF-8"}
        command = [*prefix, str(bin_dir / "python"), "-m", "autograder.cli", *args]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)

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
