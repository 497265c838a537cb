"""nbgrader preprocessors of this kit, referenced from ``nbgrader_config.py``."""

from __future__ import annotations

from nbgrader.preprocessors import ClearSolutions

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
