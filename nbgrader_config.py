"""nbgrader configuration of the "SGD from scratch" kit (read by nbgrader and by `autograder`)."""

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "sgd-from-scratch"

# Stubs that name their blank: `raise NotImplementedError("mnist_loss: ...")`.
c.ClearSolutions.code_stub = {
    "python": '# YOUR CODE HERE\nraise NotImplementedError("{task}: replace this line with your code")'
}
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "autograder.nbgrader_ext.NamedStubClearSolutions",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Execution: the slowest notebook (04_mnist_sgd) runs in about 40 s on 2 CPU cores, its slowest cell
# (simple_net, 40 epochs) in about 10 s; 300 s per cell leaves room for slow machines and still stops
# an endless loop.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
# nbclient waits 4 s by default for a cell's last outputs after it finishes; a busy machine needs longer.
c.Execute.iopub_timeout = 30
# `autograder grade` leaves out the cells after a notebook's last graded, solution or task cell: no score
# depends on them (in 04_mnist_sgd they are the closing demonstrations, about three quarters of its cells'
# CPU). True runs them, as `nbgrader autograde` does, to keep their outputs in the autograded notebooks.
c.GradingExecute.run_trailing_cells = False

# torch and fastai print harmless warnings to stderr on import; nbgrader scores a test cell with any
# stderr output as 0, so drop those (and only those) stderr outputs before scoring.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\A(?:[^\n]*(?:FutureWarning|UserWarning|DeprecationWarning): [^\n]*\n(?:  [^\n]*\n?)?)+\Z"

# Feedback never shows the hidden test code.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

# Never copy caches or checkpoints into release/ or feedback.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".hypothesis", "*.pt"]
