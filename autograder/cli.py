"""The ``autograder`` command: a thin layer; each command forwards to a function of the package."""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Iterator

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


@contextlib.contextmanager
def _failing_on(*kinds: type[BaseException]) -> Iterator[None]:
    """Turn the library's errors of ``kinds`` into a clear message and exit code 2."""
    try:
        yield
    except kinds as error:
        _fail(str(error))


def _course(course: Path | None) -> Path:
    """The course folder: ``course``, else the one found from the current folder; exit 2 when there is none."""
    try:
        return find_course_root(course)
    except CourseError as error:
        _fail(str(error))
        raise


def _provision_offline(data: Path | None, assignments: list[str]) -> None:
    """Exit 2 unless the MNIST sample that ``assignments`` need is provisioned (from ``data``, never downloaded)."""
    from autograder.grading import commands

    with _failing_on(DataError):
        commands.provision_offline(data=data, assignments=assignments)


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
    from autograder.data import provision_mnist_sample
    from autograder.reference.runs import report_runs

    table = Table(title="Reference solution on the MNIST sample (validation accuracy)")
    for column in ("run", "accuracy", "bar", "epochs", "CPU s"):
        table.add_column(column)
    try:
        rows = report_runs(provision_mnist_sample(data), device=device, seed=seed)
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


def _progress_listener(progress):
    """Show the library's events: the plan, one line per submission graded, the summary, the demo course."""
    state = {"task": None}

    def listen(kind, payload):
        if kind == "waiting":
            progress.console.print(payload, highlight=False, markup=False)
        elif kind == "plan":
            progress.console.print(payload.describe(), highlight=False, soft_wrap=True)
        elif kind == "start":
            state["task"] = progress.add_task("grading", total=payload)
        elif kind == "done":
            _print_result(progress, payload)
            progress.advance(state["task"])
        elif kind == "graded":
            from autograder.grading.summary import summary

            progress.console.print(summary(payload))
        elif kind == "demo":
            _print_demo_course(progress.console, payload)

    return listen


def _print_result(progress, result) -> None:
    style = "green" if result.status.value == "graded" else ("yellow" if result.status.gradable else "red")
    score = f"{result.score:g}/{result.max_score:g}" if result.cells else "-"
    progress.console.print(f"  {result.student:20s} [{style}]{result.status.value:16s}[/] {score:>9s} {result.reason}")


def _print_demo_course(out: Console, course) -> None:
    out.print(f"demo course: {course.root}")
    for student, what in course.students.items():
        out.print(f"  {student:10s} {what}")
    if course.no_sandbox is not None:  # the demo grades its own made-up submissions: nothing hostile to contain
        out.print(f"no namespace sandbox here ({course.no_sandbox}): grading the demo's own submissions without one")


@contextlib.contextmanager
def _progress():
    """A progress bar drawn only on a terminal (in a log or a pipe it would leave its control characters behind),
    and the listener that feeds it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        yield _progress_listener(progress)


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
    from autograder.grading import commands
    from autograder.grading.course_lock import CourseLocked
    from autograder.grading.pipeline import GradingError

    if executor == "dask" and not scheduler:
        _fail("--executor dask needs --scheduler ADDRESS (e.g. tcp://scheduler:8786) or DASK_SCHEDULER_ADDRESS")
    root = _course(course)
    _provision_offline(data, [assignment])
    limits = commands.grade_limits(cell_timeout=cell_timeout, cpu_limit=cpu_limit, memory_limit=memory_limit, output_limit=output_limit)
    with _failing_on(GradingError, CourseError, CourseLocked), _progress() as listener:
        outcome = commands.grade_assignment(
            course_root=root, assignment=assignment, source=source, jobs=jobs, force=force, students=students, limits=limits,
            executor=executor, scheduler=scheduler, wait=not no_wait, unsafe_no_sandbox=unsafe_no_sandbox, listener=listener)
    console.print(f"class report: {outcome.report.page}")
    if not outcome.batch.all_gradable:
        errors.print("[red]some submissions could not be graded: see their status and reason above[/]")
        sys.exit(1)


def _nothing_graded(assignment: str) -> None:
    _fail(f"no graded submissions of {assignment}: run `autograder grade {assignment}` first")


@main.command("report")
@click.argument("assignment")
@course_option
def report_command(assignment: str, course: Path | None) -> None:
    """Write the class report of ASSIGNMENT: the mistakes the class made, blank by blank (reports/ASSIGNMENT/)."""
    from autograder.grading import commands

    report = commands.write_report(course_root=_course(course), assignment=assignment)
    if report is None:
        _nothing_graded(assignment)
    console.print(f"wrote {report.page}, {report.csv.name} and {report.json.name}")


@main.command("export")
@click.argument("assignment")
@course_option
def export_command(assignment: str, course: Path | None) -> None:
    """Write grades.csv for ASSIGNMENT under exports/ (nbgrader's export columns, status, reason, one per blank)."""
    from autograder.grading import commands

    root = _course(course)
    exports = commands.write_exports(course_root=root, assignment=assignment)
    if not exports.submissions:
        _nothing_graded(assignment)
    console.print(f"wrote {exports.grades_csv.relative_to(root)}")


@main.command("feedback")
@click.argument("assignment")
@course_option
@data_option
def feedback_command(assignment: str, course: Path | None, data: Path | None) -> None:
    """Write a feedback page per student (check messages, training curves; no hidden test code)."""
    from autograder.grading import commands

    root = _course(course)
    _provision_offline(data, [assignment])
    pages = commands.write_feedback(course_root=root, assignment=assignment)
    if not pages:
        _nothing_graded(assignment)
    console.print(f"wrote {len(pages)} feedback page(s) under {(root / 'feedback').relative_to(root)}/")


@main.command("gradescope")
@click.argument("assignment")
@course_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("autograder.zip"), show_default=True)
@click.option("--data", type=click.Path(path_type=Path, exists=True), default=None,
              help="Ship this MNIST sample (mnist_sample.tgz or its folder, about 3 MB) in the zip.")
@click.option("--data-url", default=None, help="Or: the URL setup.sh downloads the MNIST sample archive from.")
@click.option("--data-sha256", default=None, help="The SHA-256 that archive must have.")
@click.option("--cell-timeout", type=click.IntRange(1), default=None, help="Seconds one cell may run [default: 300].")
@click.option("--cpu-limit", type=click.IntRange(1), default=None, help="CPU seconds per submission [default: 900].")
@click.option("--memory-limit", type=click.IntRange(64), default=None, help="MiB of memory per submission [default: 6144].")
def gradescope_command(assignment, course, out, data, data_url, data_sha256, cell_timeout, cpu_limit, memory_limit) -> None:
    """Build the autograder zip that Gradescope runs to grade ASSIGNMENT (see docs/gradescope.md)."""
    from autograder.gradescope import build

    limits = {name: value for name, value in (("cell_timeout", cell_timeout), ("cpu_seconds", cpu_limit), ("memory_mb", memory_limit))
              if value is not None}
    with _failing_on(build.BuildError, CourseError):
        built = build.main(assignment=assignment, course=course, out=out, data=data, data_url=data_url, data_sha256=data_sha256,
                           limits=limits)
    console.print(f"wrote {built.path} ({built.size / 2**20:.1f} MiB, {len(built.members)} files): upload it as the assignment's autograder")


@main.command("demo")
@course_option
@data_option
@click.option("--assignment", default="04_mnist_sgd", show_default=True)
@click.option("--into", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for the demo course [default: .cache/demo-course in the course folder].")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=None)
def demo_command(course: Path | None, data: Path | None, assignment: str, into: Path | None, jobs: int | None) -> None:
    """The whole instructor cycle on demo submissions: grade, export, feedback, summary."""
    from autograder.grading import commands

    root = _course(course)
    _provision_offline(data, [assignment])
    with _progress() as listener:
        demo = commands.run_demo(course_root=root, assignment=assignment, into=into, jobs=jobs, listener=listener)
    example = demo.pages[0] if demo.pages else "-"
    console.print(f"exports: {demo.grades_csv}; feedback: {len(demo.pages)} page(s), e.g. {example}")
    console.print(f"class report: {demo.report.page}")
    if demo.batch.all_gradable:
        _fail("the demo's corrupted submission was not reported")


if __name__ == "__main__":
    main()
