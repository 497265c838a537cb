"""Autograder for the "SGD from scratch" lesson: reference solution, data, hidden checks, grading, CLI.

Instructor-only: release notebooks never import this package.
"""

__version__ = "0.1.0"
