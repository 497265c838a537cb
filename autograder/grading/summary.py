"""The terminal summary of a batch: per student total and status, per blank the class pass rate."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from autograder.grading.results import BatchResult, Status

STATUS_STYLE = {Status.GRADED: "green", Status.TIMEOUT: "yellow", Status.TESTS_MODIFIED: "yellow"}


def students_table(batch: BatchResult) -> Table:
    """One row per student: score, status and the reason when not plainly graded."""
    table = Table(title=f"{batch.assignment}: {len(batch.submissions)} submission(s)")
    for column in ("student", "score", "status", "reason"):
        table.add_column(column, overflow="fold")
    for result in batch.submissions:
        style = STATUS_STYLE.get(result.status, "red")
        score = f"{result.score:g}/{result.max_score:g}" if result.cells else "-"
        table.add_row(result.student, score, f"[{style}]{result.status.value}[/]", result.reason)
    return table


def pass_rate_table(batch: BatchResult) -> Table:
    """One row per blank: the share of gradable submissions with full points on it."""
    table = Table(title="class pass rate per blank (full points)")
    table.add_column("blank")
    table.add_column("pass rate", justify="right")
    for blank, rate in batch.pass_rates().items():
        table.add_row(blank, f"{rate:.0%}")
    return table


def summary(batch: BatchResult) -> Group:
    """Both tables, ready for ``rich.console.Console.print``."""
    return Group(students_table(batch), pass_rate_table(batch))
