"""nbgrader preprocessors of this kit, referenced from ``nbgrader_config.py``."""

from __future__ import annotations

import traceback

from nbgrader.converters import Autograde
from nbgrader.converters.base import BaseConverter
from nbgrader.nbgraderformat import ValidationError
from nbgrader.preprocessors import CheckCellMetadata, ClearSolutions, Execute, NbGraderPreprocessor
from traitlets import Bool, Integer

from autograder.nbgrader_cells import grade_id, is_grade, is_solution, is_task

TASK_PLACEHOLDER = "{task}"


class NamedStubClearSolutions(ClearSolutions):
    """``ClearSolutions`` whose code stub names its task.

    ``{task}`` in ``ClearSolutions.code_stub`` becomes the answer cell's ``grade_id`` (the blank's name),
    so a student running an unfinished cell reads e.g. ``NotImplementedError: mnist_loss: ...``.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        task = grade_id(cell) or "this blank"
        template = dict(self.code_stub)
        self.code_stub = {language: stub.replace(TASK_PLACEHOLDER, task) for language, stub in template.items()}
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self.code_stub = template


class OutputLimitExceeded(RuntimeError):
    """A notebook printed or displayed more than the grader accepts."""


class GradingExecute(Execute):
    """nbgrader's ``Execute`` as grading runs it: capped output, and no cell that cannot change a score.

    - A notebook whose outputs exceed ``max_output_bytes`` in total is stopped (``OutputLimitExceeded``):
      without a cap, endless printing would fill the grading process's memory with output messages.
    - Unless ``run_trailing_cells`` is set, the cells after the notebook's last graded, solution or task cell
      are left out: they run after every test cell, so no score depends on them (in ``04_mnist_sgd`` they
      are the closing demonstrations, about three quarters of its cells' CPU). They keep their source and
      stay without outputs, as nbgrader's ``ClearOutput`` left them.
    """

    max_output_bytes = Integer(64 * 2**20, help="Bytes of output a notebook may produce in all cells together.").tag(config=True)
    run_trailing_cells = Bool(False, help=(
        "Also execute the cells after the notebook's last graded, solution or task cell, as `nbgrader autograde` "
        "does. They cannot change a score; run them to keep their outputs in the autograded notebooks."
    )).tag(config=True)

    prestarted = None
    """A kernel manager whose kernel was started ahead (see ``nbgrader_worker --ready``): the next notebook
    executed in this process runs in that kernel instead of starting one; it is used once."""

    def preprocess(self, nb, resources=None, km=None):
        if km is None and GradingExecute.prestarted is not None:
            km, GradingExecute.prestarted = GradingExecute.prestarted, None
        self._output_bytes = 0
        self._last_cell = len(nb.cells) - 1 if self.run_trailing_cells else last_tracked_cell(nb)
        return super().preprocess(nb, resources, km)

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        for channel in (kc.shell_channel, kc.iopub_channel):
            poll_in_slices(channel)
        return kc

    def preprocess_cell(self, cell, resources, index):
        if index > self._last_cell:
            return cell, resources
        return super().preprocess_cell(cell, resources, index)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(value)) for value in content.get("data", {}).values())
        self._output_bytes = getattr(self, "_output_bytes", 0) + size
        if self._output_bytes > self.max_output_bytes:
            raise OutputLimitExceeded(f"the notebook's output exceeded {self.max_output_bytes // 2**20} MiB")
        return super().output(outs, msg, display_id, cell_index)


POLL_SLICE_SECONDS = 1.0


def poll_in_slices(channel) -> None:
    """Make ``channel.get_msg(timeout)`` wait in polls of at most ``POLL_SLICE_SECONDS``, until ``timeout``.

    A ZeroMQ socket's file descriptor signals changes of state only (edge-triggered): a message whose signal was
    consumed elsewhere can sit unread until the next message or the end of the poll. Cells after a widget cell
    (``@interact``) have been seen to wait their whole cell timeout this way. Every new poll reads the
    socket's state first, so a message that is already there is found within one slice.
    """
    from queue import Empty
    from time import monotonic

    get_msg = channel.get_msg

    async def get_msg_in_slices(timeout=None):
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            left = POLL_SLICE_SECONDS if deadline is None else max(0.0, deadline - monotonic())
            try:
                return await get_msg(timeout=min(POLL_SLICE_SECONDS, left))
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg_in_slices


def last_tracked_cell(nb) -> int:
    """The index of ``nb``'s last cell that nbgrader grades or tracks (grade, solution or task); the last
    cell's index when there is none, so that nothing is left out of a notebook nbgrader does not know."""
    for index in range(len(nb.cells) - 1, -1, -1):
        cell = nb.cells[index]
        if is_grade(cell) or is_solution(cell) or is_task(cell):
            return index
    return len(nb.cells) - 1


class RestoreCellMetadata(NbGraderPreprocessor):
    """Give a submission's cells the grading metadata the gradebook says they have, before nbgrader reads it.

    A student who edited a cell's nbgrader metadata (a duplicated test cell, an answer cell made a graded cell
    worth 10 points, a test cell made ungraded or renamed) would otherwise make nbgrader refuse the whole
    notebook or score it wrongly. The rules are ``autograder.grading.cell_restore.restore``'s; the assignment's
    cells come from the gradebook (``nbgrader generate_assignment`` saved them), their sources without the
    hidden tests. Runs first among ``Autograde.sanitize_preprocessors`` (see ``nbgrader_config.py``).
    """

    def preprocess(self, nb, resources):
        from nbgrader.api import Gradebook

        from autograder.grading.cell_restore import restore

        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            expected = gradebook_cells(gradebook, info["notebook"], info["assignment"])
        for change in restore(nb, expected):
            self.log.warning("%s", change)
        return nb, resources


def gradebook_cells(gradebook, notebook: str, assignment: str) -> list:
    """The tracked cells of ``notebook`` as the gradebook knows them, in notebook order (``TrackedCell``s)."""
    from autograder.grading.cell_restore import TrackedCell, visible_source

    found = gradebook.find_notebook(notebook, assignment)
    points = {cell.name: float(cell.max_score) for cell in found.grade_cells}
    solutions = {cell.name for cell in found.solution_cells}
    tasks = {cell.name for cell in found.task_cells}
    return [
        TrackedCell(cell.name, cell.cell_type, visible_source(cell.source), cell.name in points, cell.name in solutions,
                    bool(cell.locked), cell.name in tasks, points.get(cell.name))
        for cell in found.source_cells
        if cell.name in points or cell.name in solutions or cell.name in tasks or cell.locked
    ]


class CheckCellMetadataOnce(CheckCellMetadata):
    """nbgrader's ``CheckCellMetadata`` with this process's validator (``autograder.nbgrader_schema``): the same
    verdicts, errors and log, without nbgrader checking its schema again for every cell of every notebook."""

    def preprocess(self, nb, resources):
        from autograder.nbgrader_schema import metadata_validator

        validator = metadata_validator()
        validator.log = self.log
        try:
            validator.validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            message = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(message)
            raise ValidationError(message)
        return nb, resources


class RecordAutograde(Autograde):
    """nbgrader's ``Autograde`` for a notebook that was executed already: its sanitize steps, then its grading
    steps, in one pass over the notebook.

    ``Autograde`` converts a submission twice: it sanitizes ``submitted/`` into ``autograded/``, then reads that
    back, runs the grading steps (execution among them) and writes it again. With no execution between them,
    the second read, copy, validation and write change nothing: here the same preprocessors run in the same
    order, on one copy, read once from ``submitted/`` and written once to ``autograded/``. The gradebook rows and
    the written notebook are the same (``tests/grading/test_record_once.py``).
    """

    def _init_preprocessors(self) -> None:
        self.exporter._preprocessors = []
        for preprocessor in [*self.sanitize_preprocessors, *self.autograde_preprocessors]:
            self.exporter.register_preprocessor(preprocessor)

    action = "recording"
    """What the pass does after sanitizing, for nbgrader's log."""

    def convert_single_notebook(self, notebook_filename: str) -> None:
        self.log.info("Sanitizing and %s %s", self.action, notebook_filename)
        self._sanitizing = True  # reads submitted/ (``_input_directory``), writes autograded/
        self._init_preprocessors()
        BaseConverter.convert_single_notebook(self, notebook_filename)


class GradingAutograde(RecordAutograde):
    """nbgrader's ``Autograde`` as the grading worker runs it: the sanitize steps, then the execution steps
    (``nbgrader_worker.AUTOGRADE_PREPROCESSORS``), in one pass over the notebook, read once from ``submitted/``
    and written once to ``autograded/``, as ``RecordAutograde`` does for recording.

    The sanitized notebook nbgrader writes between its two passes, reads back, validates and copies is the one
    this pass executes. The pass runs with ``NBGRADER_EXECUTION=autograde``, as nbgrader's execution pass does;
    the kernel's working folder is the sandbox's either way (``kernel_boot``), not the notebook's folder. The
    executed notebook is the same (``tests/grading/test_grading_one_pass.py``).
    """

    action = "autograding"

    def convert_single_notebook(self, notebook_filename: str) -> None:
        from nbgrader.utils import setenv

        with setenv(NBGRADER_EXECUTION="autograde"):
            super().convert_single_notebook(notebook_filename)
