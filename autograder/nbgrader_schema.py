"""nbgrader's check of the cells' grading metadata, with its JSON schema compiled once per process.

nbgrader's ``CheckCellMetadata`` builds a ``MetadataValidator`` for every notebook (reading three schema files)
and validates each cell's metadata with ``jsonschema.validate``, which checks the schema itself against the JSON
Schema meta-schema before every cell: about 12 ms per notebook of this course, twice per submission (executing
and recording). ``metadata_validator`` is nbgrader's own validator with that step done once.
"""

from __future__ import annotations

import functools

from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for
from nbgrader.nbgraderformat import MetadataValidator, SchemaTooNewError, SchemaTooOldError
from nbgrader.nbgraderformat.common import BaseMetadataValidator


class _CompiledSchema(BaseMetadataValidator):
    """``BaseMetadataValidator.validate_cell`` with the schema checked and its validator built once, in ``__init__``;
    the checks and errors are ``jsonschema.validate``'s."""

    def __init__(self) -> None:
        super().__init__()
        validator_class = validator_for(self.schema)
        validator_class.check_schema(self.schema)
        self.compiled = validator_class(self.schema)

    def validate_cell(self, cell) -> None:
        if "nbgrader" not in cell.metadata:
            return
        version = cell.metadata["nbgrader"].get("schema_version", 0)
        if version < self.schema_version:
            raise SchemaTooOldError(f"Outdated schema version: {version} (expected {self.schema_version})", version, self.schema_version)
        if version > self.schema_version:
            raise SchemaTooNewError(f"Schema version is too new: {version} (expected {self.schema_version})", version, self.schema_version)
        error = best_match(self.compiled.iter_errors(cell.metadata["nbgrader"]))
        if error is not None:
            raise error


class CompiledMetadataValidator(MetadataValidator, _CompiledSchema):
    """nbgrader's current ``MetadataValidator`` (its cell and notebook rules), over ``_CompiledSchema``."""


@functools.cache
def metadata_validator() -> CompiledMetadataValidator:
    """This process's validator (built on first use)."""
    return CompiledMetadataValidator()
