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

# Before nbgrader reads a submission, every cell gets back the grading metadata the assignment gave it (a
# student may have duplicated, renamed or re-flagged a cell, or given an answer cell points): the honest parts
# are then graded as released, and no edit of the metadata can raise a score.
c.Autograde.sanitize_preprocessors = [
    "autograder.nbgrader_ext.RestoreCellMetadata",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "autograder.nbgrader_ext.CheckCellMetadataOnce",
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

# nbgrader scores a test cell with any stderr output as 0. `IgnorePattern` (run by `nbgrader autograde` and by
# `autograder grade`) drops a code cell's stderr stream output when `re.search(pattern, output.text)` finds a
# match; stdout is never looked at. Streams are not merged: an output is what the kernel sent in one message
# (the writes of about 0.2 s). The pattern matches only an output made entirely of honest noise:
#
# - whole Python warnings as `warnings.showwarning` prints them: the header `FILE:LINE: CATEGORY: first line of
#   the message`, then, when there is more, the message's further lines ending with the warning's source line
#   (two spaces, then the code that warned). So torch's two-line "Converting a tensor with requires_grad=True to
#   a scalar ..." warning, then `  losses.append(float(loss))`, is dropped (the previous pattern let its second
#   line through, and a correct `fit_quadratic` using `float(loss)` scored 0). Lines after a header count as the
#   warning's only when an indented source line closes them: `header + free text` is kept (a multi-line message
#   without a source line, rare since notebook cells and library files have one, is kept too), and so is any
#   other text before, between or after warnings, e.g. a student's own `print(..., file=sys.stderr)`;
# - categories that say nothing about whether the answer is right (the checks decide that): UserWarning,
#   FutureWarning, DeprecationWarning (with PendingDeprecationWarning and library subclasses such as
#   MatplotlibDeprecationWarning: any name ending in one of these), and RuntimeWarning (numpy and torch's
#   "divide by zero encountered in log" and the like, common in correct plotting code; a wrong value is caught
#   by the checks, not by stderr). Other categories (SyntaxWarning, ResourceWarning, ...) are kept;
# - matplotlib's "Matplotlib is building the font cache; this may take a moment." (logged when building the
#   cache takes over 5 s: the first import on a fresh machine).
#
# fastai's progress bars never reach stderr (measured with nbclient: fastprogress shows HTML display data in a
# kernel; its console bar and `Learner.fit`'s rows without a bar go to stdout), so nothing is needed for them.
# The pattern takes time linear in the text, even for text crafted to be slow: whether a line is a header is
# decided once by a lookahead, and no header is ever taken as a further line or source line.
# `tests/grading/test_noisy_submissions.py` holds the captured texts and both verdicts.
_CATEGORY = r"\w*(?:UserWarning|FutureWarning|DeprecationWarning|RuntimeWarning)"
_HEADER_AHEAD = r"[^\n]*?:[0-9]+:[ ]" + _CATEGORY + r":[ ]"  # FILE:LINE: CATEGORY: (then the message)
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(?x) \A (?:"
    r"    (?=" + _HEADER_AHEAD + r") [^\n]*\n"             # a warning's header line
    r"    (?: (?: (?!" + _HEADER_AHEAD + r") [^\n]*\n )*"   # its message's further lines, if any ...
    r"        (?!" + _HEADER_AHEAD + r") [ ][ ][^\n]*\n )?"  # ... up to its source line: "  code that warned"
    r"  | Matplotlib[ ]is[ ]building[ ]the[ ]font[ ]cache;[ ]this[ ]may[ ]take[ ]a[ ]moment\.\n"
    r") + \Z"
)

# Feedback never shows the hidden test code.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

# Never copy caches or checkpoints into release/ or feedback.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".hypothesis", "*.pt"]
