"""The ``autograder`` command: a thin layer; each command forwards to a function of the package."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

import click  # noqa: E402 - after the filter, so importing torch stays quiet
from rich.console import Console
from rich.table import Table

from autograder.course import CourseError, find_course_root
from autograder.data import DataError

console = Console()

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
    console.print(f"[bold red]error:[/] {message}")
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
    """Regenerate release/ from source/ with nbgrader generate_assignment."""
    from autograder.release import regenerate_release

    root = _course(course)
    try:
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
    from autograder.validate import validate as run_validation

    root = _course(course)
    _provision(data)
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
    if not all(result.ok for result in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
