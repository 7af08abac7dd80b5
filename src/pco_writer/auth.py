"""The optional shared-secret token of the control server and the writers; pure, no I/O but files.

When a token is configured, every state-changing route (start, stop, kill, setting parameters,
a writer's end report) needs the header ``X-PCO-Writer-Token: <token>``; read-only routes stay
open, so that pco_rclient's status polling keeps working. The control server hands its token
to the writers it spawns in the environment variable ``PCO_WRITER_TOKEN`` (not on the command
line, where ``ps`` would show it). See docs/decisions/0030-token-auth.md.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from pco_writer.errors import ConfigError

__all__ = ["TOKEN_ENV", "TOKEN_HEADER", "read_token", "token_from_env", "token_matches"]

TOKEN_HEADER = "X-PCO-Writer-Token"
"""The HTTP header that carries the token."""
TOKEN_ENV = "PCO_WRITER_TOKEN"
"""The environment variable a writer (or the server, without --token-file) reads it from."""
_MIN_LENGTH = 16


def read_token(path: Path) -> str:
    """The token in the first line of a file (readable by the server's user only).

    Raises:
        ConfigError: the file cannot be read or the token is too short to be a secret.
    """
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from None
    return check_token(token, f"the token in {path}")


def token_from_env() -> str:
    """The token in ``PCO_WRITER_TOKEN``, or '' when it is not set."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    return check_token(token, f"${TOKEN_ENV}") if token else ""


def check_token(token: str, what: str) -> str:
    """Refuse a token that is too short, or one that cannot travel in an HTTP header."""
    if len(token) < _MIN_LENGTH or not token.isascii() or not token.isprintable():
        raise ConfigError(
            f"{what} must be at least {_MIN_LENGTH} printable ASCII characters; make one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token


def token_matches(given: str | None, expected: str) -> bool:
    """True when no token is expected, or ``given`` is it (compared in constant time)."""
    if not expected:
        return True
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
