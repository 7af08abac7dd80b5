"""JSON over HTTP for the client: every failure becomes a ClientError that says what to do."""

from __future__ import annotations

from typing import Any

import httpx

from pco_writer.errors import ClientError

__all__ = ["JsonApi", "Unreachable"]


class Unreachable(ClientError):  # noqa: N818 - reads as "the server is unreachable"
    """The server refused the connection or did not answer in time."""


class JsonApi:
    """A server that answers JSON.

    Args:
        base_url: ``http://HOST:PORT``.
        what: how to call the server in messages ("control server", "writer").
        hint: what to check when it cannot be reached.
        http: the shared HTTP client.
    """

    def __init__(self, base_url: str, what: str, hint: str, http: httpx.Client) -> None:
        self.base_url = base_url
        self.what = what
        self.hint = hint
        self._http = http

    def get(self, path: str, timeout: float | None = None) -> dict[str, Any]:
        """GET ``path``; the JSON object of a 2xx answer.

        Raises:
            Unreachable: no connection or no answer in time.
            ClientError: an error answer, with the server's message.
        """
        return self._send("GET", path, None, timeout)

    def post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """POST a JSON body to ``path``; the JSON object of a 2xx answer."""
        return self._send("POST", path, body, timeout)

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self._http.request(method, url, json=body, **extra)
        except httpx.TimeoutException:
            raise Unreachable(f"the {self.what} at {self.base_url} did not answer {path} in time; "
                              f"{self.hint}") from None  # fmt: skip
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the {self.what} at {self.base_url} ({exc}); "
                              f"{self.hint}") from None  # fmt: skip
        answer = _json_object(response, url)
        if response.is_error:
            message = answer.get("detail") or answer.get("error") or response.reason_phrase
            raise ClientError(f"the {self.what} refused {method} {path}: {message}")
        return answer


def _json_object(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        raise ClientError(
            f"{url} answered {response.status_code} without JSON; is it a pco-writer server?"
        ) from None
    if not isinstance(answer, dict):
        raise ClientError(f"{url} answered a JSON {type(answer).__name__}, not an object")
    return answer
