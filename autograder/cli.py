"""The ``autograder`` command: a thin layer; each command forwards to a function of the package."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")  # nbgrader gradebook noise

from autograder.startup import skip_slow_optional_imports  # noqa: E402

skip_slow_optional_imports()

import click  # noqa: E402 - after the filter, so importing torch stays quiet
from rich.console import Console
from rich.table import Table

from autograder.course import CourseError, find_course_root
from autograder.data import DataError

console = Console()
errors = Console(stderr=True)

data_option = click.option(
    "--data",
    "data",
    type=click.Path(path_type=Path),
    envvar="MNIST_SAMPLE_ARCHIVE",
    help="MNIST_SAMPLE archive (.tgz) or folder to provision offline [env: MNIST_SAMPLE_ARCHIVE].",
)
course_option = click.option(
    "--course", "course", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="Course folder (with nbgrader_config.py and source/); default: found from the current folder.",
)


def _fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    sys.exit(2)


def _course(course: Path | None) -> Path:
    try:
        return find_course_root(course)
    except CourseError as error:
        _fail(str(error))
        raise


def _provision(data: Path | None) -> Path:
    from autograder.data import provision_mnist_sample

    try:
        return provision_mnist_sample(data)
    except DataError as error:
        _fail(str(error))
        raise


def _provision_offline(data: Path | None, assignments: list[str]) -> None:
    """For a batch: provision from a local copy only (``--data`` / ``MNIST_SAMPLE_ARCHIVE``), never download;
    then refuse to start (exit 2) when one of ``assignments`` needs the MNIST sample and it is not provisioned."""
    from autograder.checks.data import require_sample

    if data is not None:
        _provision(data)
    try:
        for name in assignments:
            require_sample(name)
    except DataError as error:
        _fail(str(error))


@click.group()
@click.version_option(package_name="autograder")
def main() -> None:
    """Autograder for the "SGD from scratch" lesson (fastai "MNIST basics")."""


@main.command()
@data_option
@click.option("--force", is_flag=True, help="Replace an already provisioned copy.")
def provision(data: Path | None, force: bool) -> None:
    """Place the MNIST sample where fastai's untar_data(URLs.MNIST_SAMPLE) finds it offline."""
    from autograder.data import provision_mnist_sample

    try:
        folder = provision_mnist_sample(data, force=force)
    except DataError as error:
        _fail(str(error))
    console.print(f"MNIST sample ready at {folder}")


@main.command()
@data_option
@click.option("--device", default=None, help="cpu, cuda or mps [env: AUTOGRADER_DEVICE; default: best available].")
@click.option("--seed", default=42, show_default=True)
def train(data: Path | None, device: str | None, seed: int) -> None:
    """Run the lesson's reference training and print the validation accuracies."""
    from autograder.reference.runs import report_runs

    table = Table(title="Reference solution on the MNIST sample (validation accuracy)")
    for column in ("run", "accuracy", "bar", "epochs", "CPU s"):
        table.add_column(column)
    try:
        rows = report_runs(_provision(data), device=device, seed=seed)
    except (DataError, ValueError) as error:
        _fail(str(error))
    for row in rows:
        colour = "green" if row.meets_bar else "red"
        table.add_row(row.name, f"[{colour}]{row.accuracy:.4f}[/]", f">= {row.bar}", str(row.epochs), f"{row.cpu_seconds:.2f}")
    console.print(table)
    if not all(row.meets_bar for row in rows):
        sys.exit(1)


@main.command()
@course_option
@click.option("--assignment", default=None, help="Only this assignment.")
def release(course: Path | None, assignment: str | None) -> None:
    """Regenerate release/ from source/ with nbgrader generate_assignment (holding the course's write lock)."""
    from autograder.grading.course_lock import course_lock
    from autograder.release import regenerate_release

    root = _course(course)
    try:
        with course_lock(root, on_wait=lambda message: console.print(message)):
            written = regenerate_release(root, assignment)
    except CourseError as error:
        _fail(str(error))
    for path in written:
        console.print(f"wrote {path.relative_to(root)}")


@main.command()
@course_option
@data_option
@click.option("--assignment", default=None, help="Only this assignment.")
def validate(course: Path | None, data: Path | None, assignment: str | None) -> None:
    """Prove that the reference solution gets full points and the untouched stubs get zero."""
    from autograder.course import assignments
    from autograder.validate import validate as run_validation

    root = _course(course)
    _provision_offline(data, [assignment] if assignment else assignments(root))
    try:
        results = run_validation(root, assignment)
    except CourseError as error:
        _fail(str(error))
    table = Table(title="nbgrader autograde of the reference and of the untouched stubs")
    for column in ("assignment", "reference", "stubs", "seconds", "verdict"):
        table.add_column(column)
    for result in results:
        reference = f"{sum(c.score for c in result.reference):g}/{result.max_score:g}"
        stubs = f"{sum(c.score for c in result.stubs):g}/{result.max_score:g}"
        verdict = "[green]ok[/]" if result.ok else "[red]FAILED[/]"
        table.add_row(result.assignment, reference, stubs, f"{result.seconds:.0f}", verdict)
    console.print(table)
    for result in results:
        for cell in result.reference:
            if cell.score != cell.max_score:
                console.print(f"[red]{result.assignment}: the reference scores {cell.score:g}/{cell.max_score:g} on {cell.cell}[/]")
        for cell in result.stubs:
            if cell.score != 0:
                console.print(f"[red]{result.assignment}: the untouched stub scores {cell.score:g} on {cell.cell}[/]")
    if not all(result.ok for result in results):
        sys.exit(1)


def _progress_listener(progress, console_):
    state = {"task": None}

    def listen(kind, payload):
        if kind == "waiting":
            progress.console.print(payload, highlight=False, markup=False)
            return
        if kind == "plan":
            progress.console.print(payload.describe(), highlight=False, soft_wrap=True)
            return
        if kind == "start":
            state["task"] = progress.add_task("grading", total=payload)
            return
        result = payload
        style = "green" if result.status.value == "graded" else ("yellow" if result.status.gradable else "red")
        score = f"{result.score:g}/{result.max_score:g}" if result.cells else "-"
        progress.console.print(f"  {result.student:20s} [{style}]{result.status.value:16s}[/] {score:>9s} {result.reason}")
        progress.advance(state["task"])

    return listen


def _limits(cell_timeout: int | None, cpu_limit: int | None, memory_limit: int | None, output_limit: int | None = None):
    from dataclasses import replace

    from autograder.grading.worker import Limits

    limits = Limits()
    changes = {"cell_timeout": cell_timeout, "cpu_seconds": cpu_limit, "memory_mb": memory_limit, "output_mb": output_limit}
    return replace(limits, **{key: value for key, value in changes.items() if value is not None})


def run_grade(root: Path, assignment: str, source: Path | None, jobs: int | None, force: bool, limits,
              executor: str = "local", scheduler: str | None = None, students: tuple[str, ...] = (), wait: bool = True,
              unsafe_no_sandbox: bool = False):
    """Grade with a progress bar and print the summary; returns the batch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from autograder.grading.pipeline import GradeOptions, grade
    from autograder.grading.summary import summary

    options = GradeOptions(force=force, limits=limits, executor=executor, scheduler=scheduler, students=tuple(students),
                           wait_for_lock=wait, unsafe_no_sandbox=unsafe_no_sandbox)
    if jobs:
        options.jobs = jobs
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # the bar is drawn only on a terminal: in a log or a pipe it would leave its control characters behind
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        batch = grade(root, assignment, source, options, _progress_listener(progress, console))
    console.print(summary(batch))
    return batch


@main.command("grade")
@click.argument("assignment")
@course_option
@data_option
@click.option("--input", "source", type=click.Path(path_type=Path, exists=True), default=None,
              help="submitted/ folder (nbgrader layout), a flat folder of <student>.ipynb, or an LMS .zip [default: the course's submitted/].")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None, help="Submissions graded at once [default: number of cores].")
@click.option("--force", is_flag=True, help="Grade again every submission, changed or not [default: only new or changed ones].")
@click.option("--student", "students", multiple=True, metavar="ID",
              help="Grade (or grade again) only this student's submission; repeat for several.")
@click.option("--cell-timeout", type=click.IntRange(1), default=None, help="Seconds one cell may run [default: 300].")
@click.option("--cpu-limit", type=click.IntRange(1), default=None, help="CPU seconds per submission [default: 900].")
@click.option("--memory-limit", type=click.IntRange(64), default=None, help="MiB of memory per submission [default: 6144].")
@click.option("--output-limit", type=click.IntRange(1), default=None, help="MiB a notebook may print, and write as files [default: 64].")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Where notebooks run: on this machine (-j at a time) or as tasks on a Dask cluster (needs --scheduler).")
@click.option("--scheduler", default=None, envvar="DASK_SCHEDULER_ADDRESS", metavar="ADDRESS",
              help="Dask scheduler address for --executor dask, e.g. tcp://scheduler:8786 [env: DASK_SCHEDULER_ADDRESS].")
@click.option("--no-wait", "no_wait", is_flag=True,
              help="When another `autograder grade` is writing to this course, exit at once (code 2) instead of waiting for it.")
@click.option("--unsafe-no-sandbox", "unsafe_no_sandbox", is_flag=True,
              help="Grade without the namespace sandbox (bubblewrap), e.g. where none can be made: student code is then held back by "
                   "the audit hook alone, and its native code can read the reference and the gradebook. Only for a cohort you trust.")
def grade_command(assignment, course, data, source, jobs, force, students, cell_timeout, cpu_limit, memory_limit, output_limit, executor,
                  scheduler, no_wait=False, unsafe_no_sandbox=False) -> None:
    """Autograde a batch of submissions of ASSIGNMENT, in parallel and resumably."""
    from autograder.grading.course_lock import CourseLocked
    from autograder.grading.pipeline import GradingError

    if executor == "dask" and not scheduler:
        _fail("--executor dask needs --scheduler ADDRESS (e.g. tcp://scheduler:8786) or DASK_SCHEDULER_ADDRESS")
    root = _course(course)
    _provision_offline(data, [assignment])
    try:
        batch = run_grade(root, assignment, source, jobs, force, _limits(cell_timeout, cpu_limit, memory_limit, output_limit), executor, scheduler,
                          students, wait=not no_wait, unsafe_no_sandbox=unsafe_no_sandbox)
    except (GradingError, CourseError, CourseLocked) as error:
        _fail(str(error))
    report = run_report(root, assignment)
    console.print(f"class report: {report.page}")
    if not batch.all_gradable:
        errors.print("[red]some submissions could not be graded: see their status and reason above[/]")
        sys.exit(1)


def run_report(root: Path, assignment: str, batch=None):
    """Write the class report of ``assignment`` (``reports/<assignment>/``) from its recorded results (``batch``,
    when already loaded); returns it."""
    from autograder.grading.class_report import write_class_report
    from autograder.grading.pipeline import load_results

    return write_class_report(batch if batch is not None else load_results(root, assignment), root)


@main.command("report")
@click.argument("assignment")
@course_option
def report_command(assignment: str, course: Path | None) -> None:
    """Write the class report of ASSIGNMENT: the mistakes the class made, blank by blank (reports/ASSIGNMENT/)."""
    from autograder.grading.pipeline import load_results

    root = _course(course)
    batch = load_results(root, assignment)
    if not batch.submissions:
        _fail(f"no graded submissions of {assignment}: run `autograder grade {assignment}` first")
    report = run_report(root, assignment, batch)
    console.print(f"wrote {report.page}, {report.csv.name} and {report.json.name}")


def run_exports(root: Path, assignment: str) -> list[Path]:
    """Write the grades CSV and the Gradescope results of ``assignment``; returns the files written."""
    from autograder.grading.exports import write_gradescope, write_grades_csv
    from autograder.grading.pipeline import load_results

    batch = load_results(root, assignment)
    folder = root / "exports" / assignment
    return [write_grades_csv(batch, folder / "grades.csv"), *write_gradescope(batch, folder / "gradescope")]


@main.command("export")
@click.argument("assignment")
@course_option
def export_command(assignment: str, course: Path | None) -> None:
    """Write grades.csv and Gradescope results.json files for ASSIGNMENT under exports/."""
    root = _course(course)
    written = run_exports(root, assignment)
    if len(written) == 1:
        _fail(f"no graded submissions of {assignment}: run `autograder grade {assignment}` first")
    console.print(f"wrote {written[0].relative_to(root)} and {len(written) - 1} Gradescope results.json file(s)")


def run_feedback(root: Path, assignment: str, device: str | None = None) -> list[Path]:
    """Write one feedback page per student of ``assignment``; returns the pages."""
    from autograder.grading.feedback import reference_training_curves, write_feedback_pages
    from autograder.grading.pipeline import load_results

    batch = load_results(root, assignment)
    trains = any(cell.report and cell.report.get("artifacts", {}).get("curves") for r in batch.submissions for cell in r.cells)
    curves = reference_training_curves(device) if trains else None
    return write_feedback_pages(batch, root / "feedback", curves)


@main.command("feedback")
@click.argument("assignment")
@course_option
@data_option
def feedback_command(assignment: str, course: Path | None, data: Path | None) -> None:
    """Write a feedback page per student (check messages, training curves; no hidden test code)."""
    root = _course(course)
    _provision_offline(data, [assignment])
    pages = run_feedback(root, assignment)
    if not pages:
        _fail(f"no graded submissions of {assignment}: run `autograder grade {assignment}` first")
    console.print(f"wrote {len(pages)} feedback page(s) under {(root / 'feedback').relative_to(root)}/")


DEMO_CELL_TIMEOUT = 60
"""Seconds per cell in the demo: the slowest honest cell (simple_net) takes about 10 s with two kernels
running, and the demo's endless loop should not hold a worker for long."""


@main.command("demo")
@course_option
@data_option
@click.option("--assignment", default="04_mnist_sgd", show_default=True)
@click.option("--into", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the demo course [default: .cache/demo-course in the course folder].")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None)
def demo_command(course: Path | None, data: Path | None, assignment: str, into: Path | None, jobs: int | None) -> None:
    """The whole instructor cycle on demo submissions: grade, export, feedback, summary."""
    from autograder.grading.demo import run_demo_course

    root = _course(course)
    _provision_offline(data, [assignment])
    demo_root = into or root / ".cache" / "demo-course"
    described = run_demo_course(root, assignment, demo_root)
    console.print(f"demo course: {demo_root}")
    for student, what in described.items():
        console.print(f"  {student:10s} {what}")
    from autograder.grading.pipeline import no_sandbox_reason

    unsandboxed = no_sandbox_reason()
    if unsandboxed is not None:  # the demo grades its own made-up submissions: nothing hostile to contain
        console.print(f"no namespace sandbox here ({unsandboxed}): grading the demo's own submissions without one")
    batch = run_grade(demo_root, assignment, demo_root / "incoming", jobs, True, _limits(DEMO_CELL_TIMEOUT, None, None),
                      unsafe_no_sandbox=unsandboxed is not None)
    written = run_exports(demo_root, assignment)
    pages = run_feedback(demo_root, assignment)
    report = run_report(demo_root, assignment)
    console.print(f"exports: {written[0]} and {len(written) - 1} Gradescope file(s); feedback: {len(pages)} page(s), e.g. {pages[0] if pages else '-'}")
    console.print(f"class report: {report.page}")
    if batch.all_gradable:
        _fail("the demo's corrupted submission was not reported")


if __name__ == "__main__":
    main()
