"""Start-up of the grading processes: leave out an optional import that costs seconds in each of them."""

from __future__ import annotations

import sys

SKIPPED_OPTIONAL_MODULES = ("rfc3987_syntax",)
"""jsonschema (imported by nbformat, hence by every grading process) imports ``rfc3987_syntax`` when it is
installed (``jupyter-events`` pulls it in) only to validate the ``iri`` string formats, which no notebook or
nbgrader schema uses. It compiles a grammar at import: about 3.5 CPU seconds per process. jsonschema treats
its absence as normal (the import is wrapped in ``suppress(ImportError)``)."""


def skip_slow_optional_imports() -> None:
    """Make importing each of ``SKIPPED_OPTIONAL_MODULES`` raise ImportError at once, unless already imported."""
    for name in SKIPPED_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)
