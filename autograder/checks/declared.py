"""What an assignment's check module declares at its top level, read from its source without importing it.

The check modules import torch and pytest. A process that only asks what they declare (the grader's coordinator
before a batch: does this assignment need the MNIST sample?) reads the module's source instead and stays free
of those imports (about 1.5 CPU s per batch).
"""

from __future__ import annotations

import ast
import re
from importlib.util import find_spec
from pathlib import Path
from typing import Any

CHECK_MODULES = ("gradient_descent", "linear_regression", "pixel_similarity", "mnist_sgd")
"""One check module (or package) per assignment, named like the reference module it compares against."""


def check_module_of(assignment: str) -> str | None:
    """The check module of ``assignment``: its name without its number (``04_mnist_sgd`` -> ``mnist_sgd``), or None."""
    module_name = re.sub(r"^\d+_", "", assignment)
    return module_name if module_name in CHECK_MODULES else None


def declared(module_name: str, name: str, default: Any = None) -> Any:
    """The literal that the check module ``module_name`` (a package's ``__init__.py``) last assigns to ``name`` at
    its top level, or ``default`` when it assigns none.

    Raises:
        ValueError: the assigned value is not a literal (a number, string, tuple, ...).
    """
    spec = find_spec(f"autograder.checks.{module_name}")
    if spec is None or spec.origin is None:
        raise KeyError(f"no check module named {module_name!r}")
    value = default
    for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            value = ast.literal_eval(node.value)
    return value


def assignment_needs_sample(assignment: str) -> bool:
    """Whether ``assignment``'s checks need the real MNIST sample (its check module's ``NEEDS_MNIST_SAMPLE``).

    An assignment without a check module needs nothing.
    """
    module_name = check_module_of(assignment)
    return module_name is not None and bool(declared(module_name, "NEEDS_MNIST_SAMPLE", False))
