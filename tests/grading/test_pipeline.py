"""`autograder grade`: statuses for bad input, parity with nbgrader, resuming, limits, and kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from autograder.course import scratch_course
from autograder.grading.demo import fill, solution_snippets
from autograder.grading import pipeline, processes
from autograder.grading.pipeline import GradeOptions, GradingError, grade, load_results, results_folder
from autograder.grading.record import cell_results, needs_registration, record_zero
from autograder.grading.outcome import Execution
from autograder.grading.results import Status, SubmissionResult
from autograder.grading import warm, worker
from autograder.grading.worker import Limits
from autograder.nbgrader_api import autograde, cell_grades, generate_assignment, open_gradebook

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSIGNMENT = "02_linear_regression"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
FAST = GradeOptions(jobs=2, limits=Limits(cell_timeout=60, cpu_seconds=300, memory_mb=4096, wall_seconds=600))

pytestmark = [pytest.mark.slow, pytest.mark.notebooks]


def make_course(into: Path) -> Path:
    course = scratch_course(REPO_ROOT, into)
    shutil.copytree(REPO_ROOT / "release", course / "release")
    return course


def solved(course: Path) -> nbformat.NotebookNode:
    return fill(course / "release" / ASSIGNMENT / NOTEBOOK, solution_snippets(course / "source" / ASSIGNMENT / NOTEBOOK))


def with_answer(course: Path, blank: str, code: str) -> nbformat.NotebookNode:
    answers = solution_snippets(course / "source" / ASSIGNMENT / NOTEBOOK)
    answers[blank] = code
    return fill(course / "release" / ASSIGNMENT / NOTEBOOK, answers)


def put(folder: Path, student: str, nb: nbformat.NotebookNode | str, name: str = NOTEBOOK) -> Path:
    target = folder / student / ASSIGNMENT / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(nb, str):
        target.write_text(nb)
    else:
        nbformat.write(nb, target)
    return target


WRONG_SIGN = '''def update(a, x, y, lr):
    y_hat = x @ a
    loss = ((y_hat - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        a.add_(lr * a.grad)
        a.grad.zero_()
    return loss
'''


@pytest.fixture(scope="module")
def bad_input_batch(tmp_path_factory, mnist_folder):
    """One batch mixing honest submissions with every kind of bad input."""
    course = make_course(tmp_path_factory.mktemp("bad-input") / "course")
    incoming = course / "incoming"
    put(incoming, "honest", solved(course))
    put(incoming, "misnamed", solved(course), name="my homework (final).ipynb")
    put(incoming, "wrong", with_answer(course, "update", WRONG_SIGN))
    put(incoming, "corrupt", nbformat.writes(solved(course))[:500])
    extra = put(incoming, "extra_files", solved(course))
    (extra.parent / "notes.txt").write_text("my notes")
    (extra.parent / "data.csv").write_text("1,2\n")
    (incoming / "empty" / ASSIGNMENT).mkdir(parents=True)
    deleted = solved(course)
    deleted.cells = [c for c in deleted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_update"]
    put(incoming, "deleted_test", deleted)
    edited = solved(course)
    for cell in edited.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "test_update":
            cell.source = "print('all checks passed')\n10.0"
            cell.metadata.nbgrader.points = 100
    put(incoming, "edited_test", edited)
    other = nbformat.read(REPO_ROOT / "source" / "03_pixel_similarity" / "03_pixel_similarity.ipynb", as_version=4)
    put(incoming, "other_assignment", other)
    batch = grade(course, ASSIGNMENT, incoming, FAST)
    return course, {result.student: result for result in batch.submissions}


def test_honest_work_gets_full_points(bad_input_batch):
    _, results = bad_input_batch
    for student in ("honest", "misnamed", "extra_files"):
        assert results[student].status == Status.GRADED, results[student]
        assert results[student].score == 10.0 == results[student].max_score


def test_wrong_work_loses_points_with_a_message(bad_input_batch):
    _, results = bad_input_batch
    wrong = results["wrong"]
    assert wrong.status == Status.GRADED and wrong.score < 10
    assert "should be about" in wrong.cells[0].output, "the visible test says what was expected"


@pytest.mark.parametrize("student, status, words", [
    ("corrupt", Status.CORRUPT, "not valid JSON"),
    ("empty", Status.EMPTY, ""),
    ("other_assignment", Status.WRONG_ASSIGNMENT, ""),
    ("deleted_test", Status.TESTS_MODIFIED, "test_update deleted"),
    ("edited_test", Status.TESTS_MODIFIED, "test_update edited"),
])
def test_each_bad_input_gets_its_own_status_and_reason(bad_input_batch, student, status, words):
    _, results = bad_input_batch
    result = results[student]
    assert result.status == status, result
    assert result.reason and words in result.reason


def test_edited_tests_are_restored_and_deleted_ones_score_zero(bad_input_batch):
    _, results = bad_input_batch
    assert results["edited_test"].score == 10.0 and results["edited_test"].max_score == 10.0
    assert results["deleted_test"].score == 0.0


def test_every_submission_has_one_saved_result_and_gradebook_entry(bad_input_batch):
    course, results = bad_input_batch
    saved = sorted(p.stem for p in results_folder(course, ASSIGNMENT).glob("*.json"))
    assert saved == sorted(results)
    for student in results:
        grades = cell_grades(course, ASSIGNMENT, student)
        assert len(grades) == 1, f"{student}: {grades}"


def test_rerun_skips_graded_submissions_unless_forced(bad_input_batch):
    course, results = bad_input_batch
    events = []
    again = grade(course, ASSIGNMENT, course / "incoming", FAST, lambda kind, payload: events.append((kind, payload)))
    assert [kind for kind, _ in events] == ["plan", "start"] and events[1] == ("start", 0)
    assert events[0][1].describe().startswith(f"0 graded, {len(results)} unchanged (skipped), 0 changed"), events[0][1].describe()
    assert {r.student: (r.status, r.score) for r in again.submissions} == {s: (r.status, r.score) for s, r in results.items()}


def test_scores_equal_nbgrader_autograde(bad_input_batch, tmp_path):
    """The same notebooks graded by stock `nbgrader autograde`, one by one, get the same cell scores."""
    course, results = bad_input_batch
    stock = make_course(tmp_path / "stock")
    generate_assignment(stock, ASSIGNMENT)
    for student in ("honest", "wrong", "edited_test", "deleted_test"):
        target = stock / "submitted" / student / ASSIGNMENT
        shutil.copytree(course / "submitted" / student / ASSIGNMENT, target)
        autograde(stock, ASSIGNMENT, student)
        theirs = [(g.cell, g.score) for g in cell_grades(stock, ASSIGNMENT, student)]
        ours = [(g.cell, g.score) for g in cell_grades(course, ASSIGNMENT, student)]
        assert ours == theirs, student


TRAILING = "from pathlib import Path\nPath('trailing.txt').write_text('ran')\nprint('the trailing cell ran')"


def test_the_cells_after_the_last_graded_cell_run_only_when_the_course_asks(tmp_path, mnist_folder):
    """No score depends on them: left out by default, run with ``GradingExecute.run_trailing_cells``, same scores."""
    course = make_course(tmp_path / "course")
    nb = solved(course)
    nb.cells.append(nbformat.v4.new_code_cell(TRAILING))
    put(course / "incoming", "student", nb)
    autograded = course / "autograded" / "student" / ASSIGNMENT / NOTEBOOK

    def graded_cells() -> tuple[float, list, list]:
        [result] = grade(course, ASSIGNMENT, course / "incoming", GradeOptions(jobs=1, force=True, limits=FAST.limits)).submissions
        assert result.status == Status.GRADED, result.reason
        cells = nbformat.read(autograded, as_version=4).cells
        last = max(i for i, cell in enumerate(cells) if cell.metadata.get("nbgrader", {}).get("grade"))
        return result.score, cells[: last + 1], [cell for cell in cells[last + 1 :] if cell.cell_type == "code"]

    score, graded, trailing = graded_cells()
    assert len(trailing) >= 2  # the lesson's own closing cells, and the one added here
    assert all(not cell.outputs and cell.execution_count is None for cell in trailing)
    assert all(cell.execution_count is not None for cell in graded if cell.cell_type == "code")
    assert not any(course.rglob("trailing.txt"))

    config = course / "nbgrader_config.py"
    config.write_text(config.read_text() + "\nc.GradingExecute.run_trailing_cells = True\n")
    score_with_all, _, trailing = graded_cells()
    assert all(cell.execution_count is not None for cell in trailing)
    assert "the trailing cell ran" in trailing[-1].outputs[0]["text"]
    assert score == score_with_all == 10.0


def test_the_cli_exits_non_zero_when_a_submission_cannot_be_graded(bad_input_batch):
    from click.testing import CliRunner

    from autograder import cli

    course, _ = bad_input_batch
    result = CliRunner().invoke(cli.main, ["grade", ASSIGNMENT, "--course", str(course), "--input", str(course / "incoming"), "-j", "2"])
    assert result.exit_code == 1, result.output
    assert "corrupt_notebook" in result.output and "could not be graded" in result.output


def test_an_unwritable_course_is_refused_before_grading(tmp_path):
    course = make_course(tmp_path / "course")
    (course / "grading").write_text("a file where a folder must go")
    with pytest.raises(GradingError, match="cannot write"):
        grade(course, ASSIGNMENT, course / "submitted", FAST)


def test_an_unknown_assignment_is_refused(tmp_path):
    from autograder.course import CourseError

    course = make_course(tmp_path / "course")
    with pytest.raises(CourseError, match="unknown assignment"):
        grade(course, "99_nothing", None, FAST)


LOOP = '''def update(a, x, y, lr):
    while True:
        pass
'''
HOG = '''def update(a, x, y, lr):
    hog = bytearray(3 * 2**30)  # 3 GiB, touched below so it is really resident
    for i in range(0, len(hog), 4096):
        hog[i] = 1
    return hog
'''


def test_limits_give_their_own_status(tmp_path, mnist_folder):
    course = make_course(tmp_path / "course")
    incoming = course / "incoming"
    put(incoming, "loops", with_answer(course, "update", LOOP))
    put(incoming, "hogs", with_answer(course, "update", HOG))
    put(incoming, "honest", solved(course))
    options = GradeOptions(jobs=2, limits=Limits(cell_timeout=10, cpu_seconds=300, memory_mb=2048, wall_seconds=300))
    results = {r.student: r for r in grade(course, ASSIGNMENT, incoming, options).submissions}
    assert results["loops"].status == Status.TIMEOUT and "test_update" in results["loops"].reason
    assert results["hogs"].status == Status.MEMORY_LIMIT and "MiB" in results["hogs"].reason, results["hogs"].reason
    assert results["hogs"].score == 0.0
    assert results["honest"].status == Status.GRADED and results["honest"].score == 10.0, results["honest"].reason


def test_later_submissions_run_in_kernels_started_ahead(tmp_path, mnist_folder, monkeypatch):
    """At -j 1 the second and third submissions take spares started during the one before; none is wasted or left."""
    taken, started = [], []
    real_take, real_start = warm.WarmStarts.take, warm.WarmStarts._start
    monkeypatch.setattr(warm.WarmStarts, "take", lambda self: taken.append(real_take(self)) or taken[-1])
    monkeypatch.setattr(warm.WarmStarts, "_start", lambda self, work: started.append(work) or real_start(self, work))
    course = make_course(tmp_path / "course")
    put(course / "incoming", "s1", solved(course))
    put(course / "incoming", "s2", with_answer(course, "update", WRONG_SIGN))
    put(course / "incoming", "s3", solved(course))
    options = GradeOptions(jobs=1, limits=FAST.limits)
    results = {r.student: r for r in grade(course, ASSIGNMENT, course / "incoming", options).submissions}
    assert [spare is not None for spare in taken] == [False, True, True]
    assert len(started) == 2 and not any(folder.exists() for folder in started)
    assert [results[s].status for s in ("s1", "s2", "s3")] == [Status.GRADED] * 3
    assert results["s1"].score == results["s3"].score == 10.0 and results["s2"].score < 10.0
    left = [p for p in psutil.Process().children(recursive=True) if "nbgrader_worker" in " ".join(p.cmdline())]
    assert not left, left


def test_a_spare_waiting_for_a_job_ends_with_its_kernel_when_its_input_closes(tmp_path, mnist_folder):
    course = make_course(tmp_path / "course")
    pool = warm.WarmStarts(course, ASSIGNMENT, FAST.limits, tmp_path / "run", 1)
    pool.refill()
    [spare] = pool._spares
    deadline = time.time() + 60
    while len(psutil.Process(spare.grader.pid).children()) == 0 and time.time() < deadline:
        time.sleep(0.2)
    stand_in = psutil.Process(spare.grader.pid).children()[0]
    while worker.forked_kernel(spare.sandbox) is None and time.time() < deadline:
        time.sleep(0.2)
    forked = worker.forked_kernel(spare.sandbox)  # the kernel itself, forked from the batch's fork server
    assert forked is not None and forked.ppid() == pool.forks.process.pid
    spare.grader.stdin.close()
    assert spare.grader.wait(60) == 0
    psutil.wait_procs([stand_in, forked], timeout=30)
    assert not stand_in.is_running() and not forked.is_running()
    pool.close()
    assert not spare.work.exists()


def test_a_checker_that_dies_is_a_grader_error_not_a_zero(tmp_path, mnist_folder, monkeypatch):
    """The kernel starts without waiting for the checker, so a checker that fails must still be noticed."""

    def broken_checker(sandbox, limits, forks=None):
        with open(sandbox.private / "checker.log", "wb") as log:
            code = "import sys; print('checker exploded'); sys.exit(3)"
            return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)

    course = make_course(tmp_path / "course")
    put(course / "incoming", "honest", solved(course))
    monkeypatch.setattr(worker, "_start_checker", broken_checker)
    [result] = grade(course, ASSIGNMENT, course / "incoming", GradeOptions(jobs=1, limits=FAST.limits)).submissions
    assert result.status == Status.GRADER_ERROR, result
    assert "checker process ended (exit code 3)" in result.reason and "checker exploded" in result.reason
    assert result.score == 0.0


def test_kill_9_mid_batch_then_rerun_loses_and_duplicates_nothing(tmp_path, mnist_folder):
    course = make_course(tmp_path / "course")
    incoming = course / "incoming"
    students = ["s1", "s2", "s3", "s4"]
    for student in students:
        put(incoming, student, solved(course))
    command = [sys.executable, "-m", "autograder.cli", "grade", ASSIGNMENT, "--course", str(course),
               "--input", str(incoming), "-j", "1", "--cell-timeout", "60"]
    scratch = tmp_path / "scratch"  # the batches' work folders ($TMPDIR); channel folders stay in /tmp
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    folder = results_folder(course, ASSIGNMENT)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(folder.glob("*.json"))) < 1:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    partial = len(list(folder.glob("*.json")))
    assert 1 <= partial < len(students), "the kill should land mid-batch"
    left = [*scratch.glob(f"{processes.GRADE_PREFIX}{process.pid}-*"), *Path("/tmp").glob(f"{processes.CHANNEL_PREFIX}{process.pid}-*")]
    assert left, "a killed grader cannot remove its folders"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert not [path for path in left if path.exists()], "the next batch removes the killed grader's folders"
    assert not list(scratch.glob(f"{processes.GRADE_PREFIX}*")), "a batch that ends removes its own work folder"
    batch = load_results(course, ASSIGNMENT)
    assert [r.student for r in batch.submissions] == students
    assert all(r.status == Status.GRADED and r.score == 10.0 for r in batch.submissions)
    for student in students:
        assert len(cell_grades(course, ASSIGNMENT, student)) == 1
    assert not list(folder.glob("*.tmp")), "no half-written result files"
    for path in folder.glob("*.json"):
        json.loads(path.read_text())


# ---------------------------------------------------------------- a record or registration cut short by a kill

MANY_BLANKS = "01_gradient_descent"


def _resumable_course(tmp_path: Path) -> tuple[pipeline.Target, pipeline.Collected, Path]:
    """A course whose gradebook knows ``MANY_BLANKS``, with one untouched submission (kim's) collected."""
    course = make_course(tmp_path / "course")
    release = course / "release" / MANY_BLANKS / f"{MANY_BLANKS}.ipynb"
    (course / "incoming" / "kim" / MANY_BLANKS).mkdir(parents=True)
    shutil.copy(release, course / "incoming" / "kim" / MANY_BLANKS / release.name)
    (work := tmp_path / "work").mkdir()
    pipeline.register_assignment(course, MANY_BLANKS, work)
    target = pipeline.Target.of(course, MANY_BLANKS)
    return target, pipeline.collect(course / "incoming", target, work / "input"), work


def test_a_submission_recorded_only_in_part_is_graded_again(tmp_path, monkeypatch):
    """A run killed while nbgrader scored kim's cells one by one (regrading kim) leaves part of a record: the next
    run grades kim again, although kim's earlier result was saved and the gradebook has kim's submission."""
    target, collected, _ = _resumable_course(tmp_path)
    [kim] = collected.submissions
    record_zero(target.course_root, MANY_BLANKS, "kim")
    cells = cell_results(target.course_root, MANY_BLANKS, "kim", None)
    pipeline.save(target, SubmissionResult("kim", MANY_BLANKS, Status.GRADED, "", cells), collected)
    assert len(target.test_cells) == 6 and pipeline.plan(target, collected, GradeOptions()).unchanged == ["kim"]

    def killed_while_recording(course_root, assignment, student, executed, submitted):
        with open_gradebook(course_root) as gradebook:
            for grade in gradebook.find_submission(assignment, student).notebooks[0].grades[:2]:
                grade.auto_score = 1.0
            gradebook.db.commit()
        raise KeyboardInterrupt("SIGKILL")  # nothing after this line runs in a killed grader

    monkeypatch.setattr(pipeline.recording, "record_executed", killed_while_recording)
    execution = Execution(Status.GRADED, "", kim.notebook, 1.0, 1.0, 10.0)
    with pytest.raises(KeyboardInterrupt):
        pipeline.record(target, kim, execution)
    decided = pipeline.plan(target, collected, GradeOptions())
    assert decided.new == ["kim"] and [s.student for s in decided.todo] == ["kim"] and not decided.standing


def test_a_record_missing_a_test_cell_of_the_release_is_graded_again(tmp_path):
    """A record made against a gradebook that knew only some of the assignment's test cells is not a grade."""
    target, collected, _ = _resumable_course(tmp_path)
    record_zero(target.course_root, MANY_BLANKS, "kim")
    cells = cell_results(target.course_root, MANY_BLANKS, "kim", None)
    pipeline.save(target, SubmissionResult("kim", MANY_BLANKS, Status.GRADED, "", cells), collected)
    with open_gradebook(target.course_root) as gradebook:
        for grade in gradebook.find_submission(MANY_BLANKS, "kim").notebooks[0].grades:
            if grade.name not in ("test_mse", "test_mae"):
                gradebook.db.delete(grade)
        gradebook.db.commit()
    assert pipeline.plan(target, collected, GradeOptions()).new == ["kim"]


def test_a_registration_cut_short_is_completed(tmp_path):
    """nbgrader writes an assignment's cells into the gradebook one by one: a run killed meanwhile leaves a
    notebook with only its first grade cells, which the next run registers again in full."""
    target, _, work = _resumable_course(tmp_path)
    with open_gradebook(target.course_root) as gradebook:
        registered = gradebook.find_notebook(MANY_BLANKS, MANY_BLANKS)
        for cell in [*registered.grade_cells, *registered.source_cells]:
            if cell.name not in ("test_mse", "test_mae"):
                gradebook.db.delete(cell)
        gradebook.db.commit()
    assert needs_registration(target.course_root, MANY_BLANKS, target.release_notebook)

    pipeline.register_assignment(target.course_root, MANY_BLANKS, work)
    assert not needs_registration(target.course_root, MANY_BLANKS, target.release_notebook)
    with open_gradebook(target.course_root) as gradebook:
        assert {cell.name for cell in gradebook.find_notebook(MANY_BLANKS, MANY_BLANKS).grade_cells} == target.test_cells
