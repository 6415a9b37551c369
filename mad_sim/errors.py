"""The project's exception classes.

Every error raised for bad input derives from :class:`MadSimError`, so callers
can catch the whole family, and names *what* is wrong and *where* (file,
record index, field, config key).  The CLI prints ``str(error)`` on one line
and exits non-zero; it never shows a traceback for these.

Classes that describe a bad argument also derive from :class:`ValueError`, so
code written against the standard library's conventions keeps working.
"""

from __future__ import annotations

from typing import Optional


class MadSimError(Exception):
    """Base class of every error mad-sim raises on purpose."""


def _where(path: Optional[str], record: Optional[int], field: Optional[str]) -> str:
    parts = []
    if path is not None:
        parts.append(str(path))
    if record is not None:
        parts.append(f"record {record}")
    if field is not None:
        parts.append(f"field {field!r}")
    return ", ".join(parts)


class DataError(MadSimError, ValueError):
    """A data file cannot be read as what it claims to be.

    Attributes:
      path: the file at fault (or None for in-memory data).
      record: zero-based index of the record at fault, if known.
      field: the field at fault, if known.
    """

    def __init__(
        self, message: str, *, path: Optional[str] = None, record: Optional[int] = None, field: Optional[str] = None
    ) -> None:
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        where = _where(self.path, record, field)
        super().__init__(f"{where}: {message}" if where else message)


class DataNotFoundError(DataError, FileNotFoundError):
    """A path or glob pattern matched no file."""


class TruncatedRecordError(DataError):
    """A TFRecord file ends in the middle of a record."""


class CorruptRecordError(DataError):
    """A TFRecord's length or payload fails its masked CRC32C check."""


class SchemaError(DataError):
    """A record parsed, but is not the message type expected (or a field is invalid)."""


class UnsafePickleError(DataError):
    """A pickle asked for a class outside the allow-list; nothing was executed."""


class ConfigError(MadSimError, ValueError):
    """A config file or keyword has an unknown key or a value of the wrong type."""


class CheckpointError(MadSimError):
    """A checkpoint or weights file is missing, corrupt or does not fit the model."""


class PresetError(MadSimError, ValueError):
    """A model preset is unknown or needs a path that was not given."""


class ShapeError(MadSimError, ValueError):
    """An array or video has the wrong shape, dtype, length or resolution."""


class ActionError(MadSimError, ValueError):
    """An environment action is non-finite or has the wrong shape."""


class RenderError(MadSimError, ValueError):
    """A renderer was given geometry it cannot draw (NaN poses, invalid viewpoint...)."""


class EnvStateError(MadSimError, RuntimeError):
    """The environment was used out of order (step before reset, step after close...)."""
