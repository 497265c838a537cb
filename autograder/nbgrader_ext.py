"""nbgrader preprocessors of this kit, referenced from ``nbgrader_config.py``."""

from __future__ import annotations

from nbgrader.preprocessors import ClearSolutions, Execute
from traitlets import Integer

TASK_PLACEHOLDER = "{task}"


class NamedStubClearSolutions(ClearSolutions):
    """``ClearSolutions`` whose code stub names its task.

    ``{task}`` in ``ClearSolutions.code_stub`` becomes the answer cell's ``grade_id`` (the blank's name),
    so a student running an unfinished cell reads e.g. ``NotImplementedError: mnist_loss: ...``.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        task = cell.metadata.get("nbgrader", {}).get("grade_id", "this blank")
        template = dict(self.code_stub)
        self.code_stub = {language: stub.replace(TASK_PLACEHOLDER, task) for language, stub in template.items()}
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        finally:
            self.code_stub = template


class OutputLimitExceeded(RuntimeError):
    """A notebook printed or displayed more than the grader accepts."""


class CappedExecute(Execute):
    """nbgrader's ``Execute`` that stops a notebook whose outputs exceed ``max_output_bytes`` in total.

    Without a cap, endless printing would fill the grading process's memory with output messages.
    """

    max_output_bytes = Integer(64 * 2**20, help="Bytes of output a notebook may produce in all cells together.").tag(config=True)

    prestarted = None
    """A kernel manager whose kernel was started ahead (see ``nbgrader_worker --ready``): the next notebook
    executed in this process runs in that kernel instead of starting one; it is used once."""

    def preprocess(self, nb, resources=None, km=None):
        if km is None and CappedExecute.prestarted is not None:
            km, CappedExecute.prestarted = CappedExecute.prestarted, None
        self._output_bytes = 0
        return super().preprocess(nb, resources, km)

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        size = len(content.get("text", "")) + sum(len(str(value)) for value in content.get("data", {}).values())
        self._output_bytes = getattr(self, "_output_bytes", 0) + size
        if self._output_bytes > self.max_output_bytes:
            raise OutputLimitExceeded(f"the notebook's output exceeded {self.max_output_bytes // 2**20} MiB")
        return super().output(outs, msg, display_id, cell_index)
