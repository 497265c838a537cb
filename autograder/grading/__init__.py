"""Grading a batch of submissions: collect, check, execute in parallel, record, report.

``pipeline.grade`` runs the steps in order; each step lives in its own module.
"""
