"""The one exception hierarchy of pco-writer.

```
PcoWriterError
├── ConfigError             a setting or request value is wrong (path, n_frames, name...)
│   └── DatasetExistsError  the dataset name is already in the output file
├── ProtocolError           a stream message is not a valid Array-1.0 frame
├── LayoutError             a layout file or node is wrong
├── OutputError             the HDF5 file cannot be created or written (disk full, permissions)
├── StateError              an operation does not fit the writer's current state
├── AuthError               a state-changing request without the configured token
├── NotFoundError           what was asked for is not there (yet): no frame for a preview
└── ClientError             the client could not get what it asked from a server

UnusualNameWarning          a valid name that looks like a mistake (``data_blak``)
```

Every message names the thing that was wrong and, where there is one, what to do.
:func:`describe_validation` is the one formatter of pydantic's validation errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol


class _Validation(Protocol):
    """pydantic's ``ValidationError`` and FastAPI's ``RequestValidationError``."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...  # noqa: D102


def describe_validation(
    exc: _Validation, name: Callable[[str], str] = str, prefix: str = ""
) -> str:
    """One ``field: reason (got value)`` per problem, joined by ``; ``.

    Args:
        exc: the validation error.
        name: how a field is called where the value came from (``--n-frames`` on the command
            line); the field's own name by default.
        prefix: the location of the whole value (``body`` of a request is left out).
    """
    return "; ".join(describe_error(err, name, prefix) for err in exc.errors())


def describe_error(
    err: Mapping[str, Any], name: Callable[[str], str] = str, prefix: str = ""
) -> str:
    """One problem of a validation error as ``field: reason (got value)``."""
    loc = [str(p) for p in err.get("loc", ()) if p != "body"]
    if loc:
        loc[0] = name(loc[0])
    where = ".".join([prefix, *loc] if prefix else loc)
    context = err.get("ctx") or {}
    if err.get("type") == "value_error" and isinstance(context.get("error"), Exception):
        message = str(context["error"])  # our own message: it names the value already
    else:
        got = err.get("input")
        short = isinstance(got, str | int | float) and len(str(got)) <= 200
        message = f"{err.get('msg', 'invalid')}{f' (got {got!r})' if short else ''}"
    return f"{where}: {message}" if where else message


class PcoWriterError(Exception):
    """Base of every error raised by pco-writer."""


class ConfigError(PcoWriterError, ValueError):
    """A setting or request value is not acceptable (a ValueError, so pydantic reports it)."""


class DatasetExistsError(ConfigError):
    """The dataset name is already present in the output file."""

    def __init__(self, dataset_name: str, path: str) -> None:
        super().__init__(
            f"dataset name {dataset_name!r} already exists in {path}; choose another "
            "(data, data_white and data_black are the usual names of one scan)"
        )
        self.dataset_name = dataset_name
        self.path = path


class ProtocolError(PcoWriterError):
    """A stream message is not a valid Array-1.0 frame.

    Attributes:
        reason: a short machine-readable key, used to count rejections by kind.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class LayoutError(PcoWriterError):
    """A layout file or one of its nodes is wrong."""


class OutputError(PcoWriterError):
    """The HDF5 output cannot be created or written."""


class StateError(PcoWriterError):
    """An operation does not fit the current state of the writer."""


class AuthError(PcoWriterError):
    """A state-changing request came without the server's token (or with a wrong one)."""


class NotFoundError(PcoWriterError):
    """What was asked for does not exist, or not yet (a preview before the first frame)."""


class ClientError(PcoWriterError):
    """A server did not do what the client asked; the message carries the server's reason."""


class UnusualNameWarning(UserWarning):
    """A valid name that looks like a mistake (a dataset name that is not one of the usual
    ones); silence it with ``warnings.simplefilter("ignore", UnusualNameWarning)``."""
