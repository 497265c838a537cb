"""Class insights: which mistakes the class made, blank by blank, from the recorded results alone.

The hidden checks name the likely mistake of each failed check ("forgot to apply sigmoid: squash the predictions
into (0, 1) first"): a named mistake is the part of the message before its first ``": "``, the advice after it.
Here those names are counted over a class, one count per student and blank however many checks named the mistake.
A failed check whose message names nothing (``"the result differs from the reference ..."``, ``"your code raised
..."``) is *unrecognised*: such messages are clustered by their text, numbers aside, so that a misconception
the checks do not know yet shows up as one large cluster.

``class_insights(batch)`` builds a ``ClassInsights`` (plain data); ``class_report.py`` renders it as an HTML
page, a CSV and a JSON file. Nothing is executed again.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations

from autograder.grading.exports import blank_max_scores, blank_names
from autograder.grading.feedback import cell_curves
from autograder.grading.results import BatchResult, CellResult, SubmissionResult

UNNAMED_MARKERS = ("differs from the reference", "your code raised", "could not run", "the result differs")
"""Words of a failure message that says something failed without naming the mistake."""
DESCRIPTION = re.compile(r"\bexpected\b.*\bgot\b|, got |\bis below\b")
"""A message that describes a wrong value (``expected 0.69, got 0.5``; ``accuracy 0.50 ... is below 0.92``) names
no mistake either."""
VISIBLE_EXAMPLE = " (on the visible test's example)"
"""What a gate (a check repeating the visible test) adds to its message."""
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
CHECKS_DID_NOT_RUN = "the hidden checks did not run"
CELL_UNFINISHED = "the test cell did not finish"
VISIBLE_TEST_FAILED = "the visible test failed though every hidden check passed"
THRESHOLDS = {"train_model": "TRAIN_MODEL"}
"""Training blanks whose final accuracy the class report plots, with the name of their bar in ``checks.thresholds``."""
PAIRS_SHOWN = 10


@dataclass(frozen=True)
class Mistake:
    """One mistake of one blank and the students who made it.

    Attributes:
        blank: the blank.
        mistake: the named mistake (``"forgot to apply sigmoid"``); for an unrecognised cluster, the failed check
            and its message with numbers replaced by ``#``.
        named: whether the checks named it (False: an unrecognised cluster).
        students: who made it, sorted.
        share: ``len(students)`` over the class's gradable submissions.
        example: one whole message as a student read it.
    """

    blank: str
    mistake: str
    named: bool
    students: list[str]
    share: float
    example: str


@dataclass(frozen=True)
class BlankInsights:
    """One blank over the class (gradable submissions only).

    Attributes:
        points: the blank's maximum points.
        submissions: gradable submissions that have the blank's test cell.
        pass_rate: the share of them with full points.
        mean_points: their mean points on it.
        mistakes: the named mistakes, most frequent first.
        unrecognised: failed checks that name no mistake, clustered by text, most frequent first.
    """

    blank: str
    points: float
    submissions: int
    pass_rate: float
    mean_points: float
    mistakes: list[Mistake] = field(default_factory=list)
    unrecognised: list[Mistake] = field(default_factory=list)


@dataclass(frozen=True)
class BlankPair:
    """Two blanks that students lost points on together.

    Attributes:
        first, second: the blanks, in the notebook's order.
        both: students who lost points on both.
        given_first: ``both`` over the students who lost points on ``first``.
    """

    first: str
    second: str
    both: int
    given_first: float


@dataclass(frozen=True)
class AccuracyStrip:
    """The final validation accuracies of a training blank's graded runs, against its calibrated bar."""

    blank: str
    threshold: float
    accuracies: list[float]

    @property
    def below(self) -> int:
        return sum(accuracy < self.threshold for accuracy in self.accuracies)


@dataclass(frozen=True)
class ClassInsights:
    """What a class did on one assignment.

    Attributes:
        submissions: every recorded submission.
        gradable: those that produced a score from running the notebook.
        statuses: submissions per status (``"graded"``, ``"timeout"``, ...), most frequent first.
        scores: the total of each submission, in student order.
        max_score: the assignment's total points.
        blanks: one entry per blank, in the notebook's order.
        lost_together: blank-by-blank counts of students who lost points on both (the diagonal: on that blank).
        pairs: the pairs of blanks most often lost together, most frequent first.
        accuracies: one strip per training blank with recorded accuracies.
    """

    assignment: str
    submissions: int
    gradable: int
    statuses: dict[str, int]
    scores: list[float]
    max_score: float
    blanks: list[BlankInsights]
    lost_together: dict[str, dict[str, int]]
    pairs: list[BlankPair]
    accuracies: list[AccuracyStrip]


def named_mistake(message: str) -> str | None:
    """The mistake a failure message names (its part before the first ``": "`` or ``"; "``, the advice after it),
    or None when it names none (a generic difference, an error, a value described)."""
    text = message.replace(VISIBLE_EXAMPLE, "").strip()
    if not text or any(marker in text for marker in UNNAMED_MARKERS) or DESCRIPTION.search(text):
        return None
    return _head(text) or None


def _head(text: str) -> str:
    """``text`` up to its first ``": "`` or ``"; "`` outside brackets (``"not implemented yet (sigmoid: ...)"``)."""
    depth = 0
    for index, character in enumerate(text):
        depth += character in "([{"
        depth -= character in ")]}" and depth > 0
        if depth == 0 and character in ":;" and text[index + 1:index + 2] == " ":
            return text[:index].strip()
    return text.strip()


def cluster_key(text: str, limit: int = 160) -> str:
    """``text`` on one line with every number replaced by ``#``, cut to ``limit`` characters."""
    flat = NUMBER.sub("#", " ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def cell_failures(cell: CellResult) -> tuple[dict[str, str], dict[str, str]]:
    """The named mistakes and unrecognised failures of one blank of one submission: ``(named, unrecognised)``,
    each mapping its key (mistake, or cluster) to one whole message. Empty for a blank with full points.

    A blank's failures are unrecognised only when none of its failed checks names a mistake: a check that fails
    without a name beside one that names the mistake is explained by it.
    """
    named: dict[str, str] = {}
    unrecognised: dict[str, str] = {}
    if cell.score >= cell.max_score:
        return named, unrecognised
    report = cell.blank_report()
    if report is None or report.error:
        why = report.error if report is not None else (cell.output.strip().splitlines() or ["no output"])[-1]
        unrecognised[cluster_key(f"{CHECKS_DID_NOT_RUN}: {why}")] = why
        return named, unrecognised
    if report.cell_unfinished:  # a timeout or an interruption: the checks it cut short say nothing of the code
        unrecognised[cluster_key(f"{CELL_UNFINISHED} ({report.visible_test_error.split(':', 1)[0]})")] = report.visible_test_error
        return named, unrecognised
    for check in report.failed:  # failed gates first, then the rest
        name = named_mistake(check.message)
        if name is not None:
            named.setdefault(cluster_key(name), check.message)
        else:
            unrecognised.setdefault(cluster_key(f"{check.name}: {check.message}"), check.message)
    if not report.failed and report.visible_test_error:  # every hidden check passed, yet the cell raised
        unrecognised[cluster_key(f"{VISIBLE_TEST_FAILED}: {report.visible_test_error}")] = report.visible_test_error
    return named, ({} if named else unrecognised)


def _ranked(blank: str, found: dict[str, dict[str, str]], class_size: int, named: bool) -> list[Mistake]:
    """``found`` (key -> student -> message) as ``Mistake``s, most students first, then by key."""
    ranked = sorted(found.items(), key=lambda item: (-len(item[1]), item[0]))
    return [
        Mistake(blank, _label(key, messages, named), named, sorted(messages), len(messages) / class_size if class_size else 0.0,
                next(iter(messages.values())))
        for key, messages in ranked
    ]


def _label(key: str, messages: dict[str, str], named: bool) -> str:
    """A named mistake's most common wording (numbers as students read them); a cluster's key."""
    if not named:
        return key
    wordings = Counter(named_mistake(message) or message for message in messages.values())
    return wordings.most_common(1)[0][0]


def _blank_insights(blank: str, points: float, cells: dict[str, CellResult], class_size: int) -> BlankInsights:
    named: dict[str, dict[str, str]] = {}
    unrecognised: dict[str, dict[str, str]] = {}
    for student, cell in cells.items():
        mistakes, unknown = cell_failures(cell)
        for key, message in mistakes.items():
            named.setdefault(key, {})[student] = message
        for key, message in unknown.items():
            unrecognised.setdefault(key, {})[student] = message
    count = len(cells)
    return BlankInsights(
        blank, points, count,
        sum(cell.score >= cell.max_score for cell in cells.values()) / count if count else 0.0,
        sum(cell.score for cell in cells.values()) / count if count else 0.0,
        _ranked(blank, named, class_size, True), _ranked(blank, unrecognised, class_size, False),
    )


def _lost(results: list[SubmissionResult], blanks: list[str]) -> dict[str, set[str]]:
    """Per blank, the gradable students who lost points on it."""
    lost: dict[str, set[str]] = {blank: set() for blank in blanks}
    for result in results:
        for cell in result.cells:
            if cell.score < cell.max_score:
                lost[cell.blank].add(result.student)
    return lost


def _pairs(lost: dict[str, set[str]], blanks: list[str]) -> list[BlankPair]:
    pairs = [BlankPair(a, b, len(lost[a] & lost[b]), len(lost[a] & lost[b]) / len(lost[a]) if lost[a] else 0.0)
             for a, b in combinations(blanks, 2)]
    return sorted((pair for pair in pairs if pair.both), key=lambda pair: (-pair.both, -pair.given_first))[:PAIRS_SHOWN]


def _accuracy_strips(results: list[SubmissionResult]) -> list[AccuracyStrip]:
    from autograder.checks import thresholds

    found: dict[str, list[float]] = {}
    for result in results:
        for cell in result.cells:
            curves = cell_curves(cell) or {}
            if cell.blank in THRESHOLDS and isinstance(curves.get("final_accuracy"), (int, float)):
                found.setdefault(cell.blank, []).append(float(curves["final_accuracy"]))
    return [AccuracyStrip(blank, getattr(thresholds, THRESHOLDS[blank]).threshold, accuracies) for blank, accuracies in found.items()]


def class_insights(batch: BatchResult) -> ClassInsights:
    """Count the class's results of one assignment: statuses, scores, and per blank its mistakes.

    Blanks are counted over the gradable submissions (an ungradable one has no cells); statuses and scores over
    all of them.
    """
    gradable = [result for result in batch.submissions if result.status.gradable]
    blanks, maxima = blank_names(batch), blank_max_scores(batch)
    insights = []
    for blank in blanks:
        cells = {result.student: cell for result in gradable for cell in result.cells if cell.blank == blank}
        insights.append(_blank_insights(blank, maxima[blank], cells, len(gradable)))
    lost = _lost(gradable, blanks)
    together = {a: {b: len(lost[a] & lost[b]) for b in blanks} for a in blanks}
    statuses = Counter(result.status.value for result in batch.submissions)
    return ClassInsights(
        batch.assignment, len(batch.submissions), len(gradable), dict(statuses.most_common()),
        [result.score for result in batch.submissions], sum(maxima.values()), insights, together, _pairs(lost, blanks),
        _accuracy_strips(gradable),
    )


__all__ = ["AccuracyStrip", "BlankInsights", "BlankPair", "ClassInsights", "Mistake", "class_insights", "named_mistake"]
