"""Errors raised by the model code. `model/` depends on nothing else in the project."""

from __future__ import annotations


class ModelError(Exception):
    """Base class of every error raised by `model/`."""


class DataValidationError(ModelError):
    """The input data breaks the schema: a column is missing or extra, a value is not a finite number, or there are no rows."""


class ParametersError(ModelError):
    """The parameters file is missing, is not JSON, or holds a value of the wrong type."""
