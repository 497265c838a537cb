"""Grading a batch of submissions: collect, check, execute in parallel, record, report.

``pipeline.grade`` runs the steps in order; each step lives in its own module. Importing this package leaves
out a slow optional import in every process that grades (the CLI, the nbgrader processes, a Dask worker
running its first task): see ``autograder.startup``.
"""

from autograder.startup import skip_slow_optional_imports

skip_slow_optional_imports()
