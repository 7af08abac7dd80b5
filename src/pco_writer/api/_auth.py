"""The token check of state-changing routes, as a FastAPI dependency for both servers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request

from pco_writer.auth import TOKEN_HEADER, token_matches
from pco_writer.errors import AuthError

__all__ = ["token_required"]


def token_required(token: Callable[[], str]) -> list[Any]:
    """Route dependencies that refuse a request without ``token()`` in its header (401).

    Args:
        token: returns the expected token; '' lets every request through.
    """

    def check(request: Request) -> None:
        expected = token()
        if not token_matches(request.headers.get(TOKEN_HEADER), expected):
            what = "a wrong" if TOKEN_HEADER in request.headers else "no"
            raise AuthError(
                f"{request.method} {request.url.path} changes state and needs the server's "
                f"token in the {TOKEN_HEADER} header; the request had {what} token"
            )

    return [Depends(check)]
