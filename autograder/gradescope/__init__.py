"""Grading on Gradescope: an autograder zip that Gradescope runs itself, one submission per container.

- ``build``: ``autograder gradescope ASSIGNMENT`` writes the zip (``setup.sh``, ``run_autograder``, the package,
  the course's notebooks, the pinned environment, the MNIST sample or its URL);
- ``scripts``: the two scripts at the zip's root; ``prepare``: setup's Python step (sample, gradebook, warm imports);
- ``run``: ``run_autograder``'s Python step: grade the upload with the pipeline and write ``results.json``;
- ``container``: the container's folders (``/autograder`` or any root) and the zip's configuration;
- ``submission``: the upload as the pipeline's input; ``isolation``: the sandbox, or the locked-down fallback;
- ``results``: one ``SubmissionResult`` in Gradescope's ``results.json`` format.
"""
