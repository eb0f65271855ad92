"""Exceptions raised while finding, reading or interpreting a model checkpoint."""


class ModelError(Exception):
    """Base class of every error this package raises about a model."""


class UnknownModelError(ModelError):
    """A model name that is neither a known name nor an existing path."""


class UnsupportedModelError(ModelError):
    """A readable checkpoint of an architecture, option or format this package does not run."""


class ModelFileError(ModelError):
    """A model file or directory that is missing, unreadable, corrupt or truncated."""
