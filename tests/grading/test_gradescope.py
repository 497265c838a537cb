"""The Gradescope autograder zip, run for real: its ``setup.sh`` and ``run_autograder`` against a temporary root laid
out like Gradescope's ``/autograder``, for a correct, a wrong, a corrupt, a hostile, a zipped and a wrong-assignment
upload, each ``results.json`` checked against a JSON schema of Gradescope's documented fields.

``setup.sh`` runs with ``AUTOGRADER_SKIP_INSTALL=1`` (no apt-get, no pip: this interpreter already has the pinned
environment); everything else it does (environment file, MNIST sample, gradebook, warm imports) runs as on Gradescope.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest
from ordinary_user import ordinary_user, reachable_folder
from test_pipeline import ASSIGNMENT, REPO_ROOT, WRONG_SIGN, solved, with_answer

from autograder.gradescope.build import BuildError, build_zip
from autograder.gradescope.container import Container
from autograder.gradescope.results import gradescope_results
from autograder.grading.results import CellResult, Status, SubmissionResult
from autograder.grading.sandbox import namespaces

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
TEST_SCHEMA = {
    "type": "object",
    "required": ["name", "score", "max_score", "output", "visibility"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1}, "name_format": {"type": "string"},
        "score": {"type": "number", "minimum": 0}, "max_score": {"type": "number", "minimum": 0},
        "status": {"enum": ["passed", "failed"]}, "number": {"type": "string"},
        "output": {"type": "string"}, "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "tags": {"type": "array", "items": {"type": "string"}}, "visibility": VISIBILITY, "extra_data": {"type": "object"},
    },
}
RESULTS_SCHEMA = {
    "type": "object",
    "required": ["score", "output", "tests"],
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number", "minimum": 0}, "execution_time": {"type": "integer", "minimum": 0},
        "output": {"type": "string", "minLength": 1}, "output_format": {"enum": ["text", "html", "simple_format", "md", "ansi"]},
        "test_output_format": {"type": "string"}, "test_name_format": {"type": "string"},
        "visibility": VISIBILITY, "stdout_visibility": VISIBILITY, "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": TEST_SCHEMA}, "leaderboard": {"type": "array"},
    },
}
"""Gradescope's results.json ("Autograder Specifications", gradescope-autograders.readthedocs.io/en/latest/specs/)."""


def valid_results(root: Path) -> dict:
    data = json.loads((root / "results" / "results.json").read_text())
    jsonschema.validate(data, RESULTS_SCHEMA)
    return data


def secrets(root: Path) -> list[str]:
    """Text that only the grader may read: the reference's and the checks' code, the hidden tests, the solutions."""
    lib = root / "source" / "lib" / "autograder"
    found = ["BEGIN HIDDEN TESTS", "BEGIN SOLUTION", "constraints.txt", "requirements.txt", '"data_url"']
    for module in (lib / "reference" / "linear_regression.py", lib / "checks" / "linear_regression.py"):
        found += [line.strip() for line in module.read_text().splitlines() if len(line.strip()) > 30][:20]
    return found


def hostile_update(root: Path) -> str:
    """An ``update`` that tries to read the reference, the hidden tests and the zip's folder (in Python and in
    native code), import the reference, and raise whatever it read, so that its check message would carry it."""
    targets = [str(root / "source/lib/autograder/reference/linear_regression.py"),
               str(root / f"source/course/source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb"), str(root / "source/gradescope.json")]
    return f'''def update(a, x, y, lr):
    import os
    import torch
    found = []
    for path in {targets!r}:
        for how in ("native", "python"):
            try:
                raw = bytes(torch.from_file(path, shared=False, size=64, dtype=torch.uint8).tolist()) if how == "native" else open(path, "rb").read()
                found.append(how + " read " + raw.decode(errors="replace").replace(chr(10), " ")[:400])
            except BaseException as error:
                found.append(how + " " + type(error).__name__)
    try:
        found.append("listing " + " ".join(os.listdir({str(root / "source")!r})))
    except BaseException as error:
        found.append("listing " + type(error).__name__)
    try:
        from autograder.reference.linear_regression import update as reference
        found.append("imported the reference")
    except BaseException as error:
        found.append("import " + type(error).__name__)
    raise ValueError(" | ".join(found))
'''


def _environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "FASTAI_HOME", namespaces.BWRAP_ENV)}
    return {**env, **extra}


def unpack(zip_path: Path, root: Path) -> Container:
    """Lay out ``root`` as Gradescope does: the zip unpacked in ``source/``, an empty ``submission/``."""
    container = Container.at(root)
    container.source.mkdir(parents=True)
    container.submission.mkdir()
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(container.source)
    return container


def run_setup(container: Container, python: str) -> subprocess.CompletedProcess:
    env = _environment(AUTOGRADER_ROOT=str(container.root), AUTOGRADER_SKIP_INSTALL="1", AUTOGRADER_PYTHON=python)
    done = subprocess.run(["bash", str(container.source / "setup.sh")], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def grade_upload(container: Container, files: dict[str, bytes | nbformat.NotebookNode], **env: str) -> dict:
    """Put ``files`` in ``submission/`` (replacing what was there), run ``run_autograder``, return the valid results."""
    for old in container.submission.iterdir():
        old.unlink()
    for name, content in files.items():
        path = container.submission / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            nbformat.write(content, path)
    done = subprocess.run(["bash", str(container.source / "run_autograder")], env=_environment(AUTOGRADER_ROOT=str(container.root), **env),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    data = valid_results(container.root)
    data["stdout"] = done.stdout
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    archive = os.environ.get("MNIST_SAMPLE_ARCHIVE")
    data = Path(archive) if archive and Path(archive).is_file() else None
    return build_zip(REPO_ROOT, ASSIGNMENT, tmp_path_factory.mktemp("zip") / "autograder.zip", data).path


@pytest.fixture(scope="module")
def container(built, request) -> Container:
    """A container root set up by the real setup.sh, as any user can enter (the kernel may run as ``nobody``)."""
    container = unpack(built, reachable_folder(request, "autograder-gradescope-") / "autograder")
    run_setup(container, sys.executable)
    return container


@pytest.fixture(scope="module")
def course_notebooks(tmp_path_factory) -> Path:
    from test_pipeline import make_course

    return make_course(tmp_path_factory.mktemp("course") / "course")


def test_the_zip_has_the_scripts_at_its_root_executable(built: Path):
    with zipfile.ZipFile(built) as archive:
        infos = {info.filename: info for info in archive.infolist()}
    for script in ("setup.sh", "run_autograder"):
        assert (infos[script].external_attr >> 16) & 0o777 == 0o755
    assert {"gradescope.json", "constraints.txt", "requirements.txt", f"course/source/{ASSIGNMENT}/{ASSIGNMENT}.ipynb",
            "lib/autograder/gradescope/run.py", "lib/autograder/reference/linear_regression.py"} <= set(infos)
    assert not any("__pycache__" in name or name.startswith("course/source/0") and ASSIGNMENT not in name for name in infos)


def test_setup_provisions_the_sample_and_builds_the_gradebook(container: Container):
    assert (container.course / "gradebook.db").is_file()
    assert "PYTHONPATH" in (container.source / "environment.sh").read_text()
    if (container.data_archive).is_file():
        assert (container.fastai_home / "data" / "mnist_sample" / "train" / "3").is_dir()


def test_a_correct_notebook_of_any_name_gets_full_points(container: Container, course_notebooks: Path):
    data = grade_upload(container, {"My Work (final).ipynb": solved(course_notebooks)})
    assert data["score"] == 10.0
    assert [(t["name"], t["score"], t["max_score"], t["status"], t["visibility"]) for t in data["tests"]] == [
        ("update", 10.0, 10.0, "passed", "visible")]
    assert "PASS" in data["tests"][0]["output"]
    assert data["output"] == f"{ASSIGNMENT}: 10/10 points"
    assert data["execution_time"] >= 1 and data["stdout_visibility"] == "hidden"


def test_a_wrong_notebook_loses_points_and_names_the_mistake(container: Container, course_notebooks: Path):
    data = grade_upload(container, {f"{ASSIGNMENT}.ipynb": with_answer(course_notebooks, "update", WRONG_SIGN)})
    [test] = data["tests"]
    assert data["score"] == test["score"] < 10 and test["status"] == "failed"
    assert "FAIL" in test["output"] and "should be about" in test["output"]


def test_a_corrupt_notebook_scores_zero_and_says_why(container: Container):
    data = grade_upload(container, {f"{ASSIGNMENT}.ipynb": b'{"cells": [oops'})
    assert data["score"] == 0.0
    assert "corrupt_notebook" in data["output"] and "not valid JSON" in data["output"]
    assert all(test["score"] == 0 and test["output"].startswith("not graded: corrupt_notebook") for test in data["tests"])


def test_a_notebook_of_another_assignment_is_named_as_such(container: Container, course_notebooks: Path):
    other = nbformat.read(course_notebooks / "release" / "01_gradient_descent" / "01_gradient_descent.ipynb", as_version=4)
    data = grade_upload(container, {"homework.ipynb": other})
    assert data["score"] == 0.0 and "wrong_assignment" in data["output"] and "01_gradient_descent" in data["output"]


def test_a_zip_upload_is_unpacked_and_graded(container: Container, course_notebooks: Path, tmp_path: Path):
    upload = tmp_path / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        archive.writestr(f"homework/{ASSIGNMENT}.ipynb", nbformat.writes(solved(course_notebooks)))
        archive.writestr("homework/notes.txt", "my notes")
    assert grade_upload(container, {"upload.zip": upload.read_bytes()})["score"] == 10.0


def test_an_empty_upload_says_so(container: Container):
    data = grade_upload(container, {})
    assert data["score"] == 0.0 and "empty_submission" in data["output"]


def test_a_hostile_notebook_reads_nothing_and_scores_zero(container: Container, course_notebooks: Path):
    data = grade_upload(container, {"hack.ipynb": with_answer(course_notebooks, "update", hostile_update(container.root))})
    assert data["score"] == 0.0
    text = json.dumps({key: value for key, value in data.items() if key != "stdout"})
    assert "read " not in data["tests"][0]["output"] and "imported the reference" not in text
    for secret in secrets(container.root):
        assert secret not in text, secret


def test_without_a_sandbox_the_kernel_runs_as_nobody_and_the_grading_files_are_root_only(built: Path, request, course_notebooks: Path):
    """Where no namespace sandbox can be made (here: bubblewrap refused), the kernel drops to ``nobody`` and the zip's
    folder is made root-only before it starts, so even native reads fail. Needs root and a Python every user can
    read (a venv from the system's python3.11 that imports this environment's packages)."""
    if os.geteuid() != 0:
        pytest.skip("the fallback drops the kernel to nobody only when grading runs as root")
    folder = reachable_folder(request, "autograder-gradescope-fallback-")
    python = str(ordinary_user(folder / "user").bin_dir / "python")
    container = unpack(built, folder / "autograder")
    run_setup(container, sys.executable)
    refused = {namespaces.BWRAP_ENV: "/nonexistent/bwrap", "AUTOGRADER_GS_PYTHON": python}
    hostile = grade_upload(container, {"hack.ipynb": with_answer(course_notebooks, "update", hostile_update(container.root))}, **refused)
    assert "the kernel ran as the unprivileged user nobody" in hostile["extra_data"]["isolation"], hostile["stdout"]
    assert (container.source.stat().st_mode & 0o777) == 0o700
    assert hostile["score"] == 0.0 and "read " not in hostile["tests"][0]["output"]
    text = json.dumps({key: value for key, value in hostile.items() if key != "stdout"})
    for secret in secrets(container.root):
        assert secret not in text, secret
    assert hostile["output"].endswith("Graded with the fallback isolation of this grading environment.")
    assert grade_upload(container, {"work.ipynb": solved(course_notebooks)}, **refused)["score"] == 10.0


def test_run_autograder_writes_results_even_when_setup_never_ran(tmp_path: Path):
    container = Container.at(tmp_path / "autograder")
    container.source.mkdir(parents=True)
    from autograder.gradescope.scripts import RUN_AUTOGRADER

    (container.source / "run_autograder").write_text(RUN_AUTOGRADER)
    done = subprocess.run(["bash", str(container.source / "run_autograder")], env=_environment(AUTOGRADER_ROOT=str(container.root)),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    data = valid_results(container.root)
    assert data["score"] == 0.0 and "not graded" in data["output"]


def test_a_failing_grader_still_writes_results(tmp_path: Path):
    from autograder.gradescope.run import GRADER_FAILED, run

    container = Container.at(tmp_path / "autograder")
    container.source.mkdir(parents=True)  # no gradescope.json: the grader fails before grading
    run(container.root)
    assert valid_results(container.root)["output"] == GRADER_FAILED


def test_an_assignment_that_needs_the_sample_is_refused_without_it(tmp_path: Path):
    with pytest.raises(BuildError, match="--data"):
        build_zip(REPO_ROOT, "04_mnist_sgd", tmp_path / "a.zip")


def test_results_of_an_ungradable_submission_follow_the_schema():
    result = SubmissionResult("s", ASSIGNMENT, Status.TIMEOUT, "test_update ran past 300 s", [CellResult("update", 0.0, 10.0)])
    data = gradescope_results(result, 3.4, {"status": "timeout"})
    jsonschema.validate(data, RESULTS_SCHEMA)
    assert data["execution_time"] == 3 and data["tests"][0]["status"] == "failed"
    assert "timeout: test_update ran past 300 s" in data["output"]


def test_the_cli_forwards_to_the_builder(monkeypatch, tmp_path: Path):
    from click.testing import CliRunner

    from autograder import cli
    from autograder.gradescope import build

    calls = {}

    def fake_main(**kwargs):
        calls.update(kwargs)
        return build.BuiltZip(tmp_path / "a.zip", 3 * 2**20, [("setup.sh", 10)])

    monkeypatch.setattr(build, "main", fake_main)
    result = CliRunner().invoke(cli.main, ["gradescope", ASSIGNMENT, "--out", str(tmp_path / "a.zip"), "--data-url", "https://example.edu/m.tgz",
                                           "--cell-timeout", "60"])
    assert result.exit_code == 0, result.output
    assert calls == {"assignment": ASSIGNMENT, "course": None, "out": tmp_path / "a.zip", "data": None, "data_url": "https://example.edu/m.tgz",
                     "data_sha256": None, "limits": {"cell_timeout": 60}}
    assert "a.zip" in result.output
