"""The writer REST API: ``build_app(writer)`` over the writer's state object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request

from pco_writer import __version__
from pco_writer.api._auth import token_required
from pco_writer.api._errors import install_error_handlers, read_json
from pco_writer.api._serving import BodyLimit

__all__ = ["WriterLike", "build_app"]


class WriterLike(Protocol):
    """What the API needs of a writer (:class:`pco_writer.writer.Writer` has it)."""

    @property
    def status(self) -> str: ...  # noqa: D102

    error: str

    def statistics(self) -> dict[str, Any]: ...  # noqa: D102
    def stop(self) -> None: ...  # noqa: D102
    def kill(self) -> None: ...  # noqa: D102
    def parameters(self) -> dict[str, Any]: ...  # noqa: D102
    def set_parameters(self, values: dict[str, Any]) -> None: ...  # noqa: D102
    def parameter_types(self) -> dict[str, str]: ...  # noqa: D102
    def add_done_callback(self, callback: Callable[[Any], None]) -> None: ...  # noqa: D102

    @property
    def done(self) -> bool: ...  # noqa: D102


def build_app(writer: WriterLike, token: str = "") -> FastAPI:
    """The REST API of one writer process.

    Args:
        writer: the writer whose state the API reports and drives.
        token: when set, ``/stop``, ``/kill`` and ``POST /parameters`` need it in the
            ``X-PCO-Writer-Token`` header.
    """
    guarded = token_required(lambda: token)
    app = FastAPI(
        title="pco-writer: writer API",
        version=__version__,
        description="Status, statistics and control of one acquisition.",
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit)

    # The read-only routes are cheap and never block: served on the event loop itself, they
    # skip the thread-pool hop (fewer GIL hand-overs while the data path keeps it busy).
    @app.get("/status")
    async def status() -> dict[str, Any]:
        """The writer's status: receiving, writing, waiting for parameters, finished, error."""
        answer = {"success": True, "status": str(writer.status), "value": "Ok"}
        if writer.error:
            answer["error"] = writer.error
        return answer

    @app.get("/statistics")
    async def statistics() -> dict[str, Any]:
        """Counters of the acquisition so far; rates in frames per second."""
        return {**writer.statistics(), "success": True}

    @app.get("/stop", dependencies=guarded)
    def stop() -> dict[str, Any]:
        """Stop receiving; what is buffered is still written, then the file is closed."""
        writer.stop()
        return {"success": True, "status": str(writer.status), "value": "Ok"}

    @app.get("/kill", dependencies=guarded)
    def kill() -> dict[str, Any]:
        """Stop now: drop what is not yet written, close the file cleanly, exit."""
        writer.kill()
        return {"success": True, "status": "killed", "value": "Ok"}

    @app.get("/parameters")
    def get_parameters() -> dict[str, Any]:
        """The layout's parameters: their values and NeXus types."""
        return _parameters_answer(writer)

    @app.post("/parameters", dependencies=guarded, openapi_extra=_PARAMETERS_BODY)
    async def set_parameters(request: Request) -> dict[str, Any]:
        """Set layout parameters from a JSON object.

        Unknown names, wrong types and values HDF5 cannot store give 422; once the acquisition
        has ended (its file closed), 409.
        """
        writer.set_parameters(await read_json(request))  # the writer checks names, values, state
        return {**_parameters_answer(writer), "message": "Parameters set."}

    return app


_PARAMETERS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}}
        },
    }
}
"""The body of POST /parameters in the OpenAPI document (read by hand: any Content-Type)."""


def _parameters_answer(writer: WriterLike) -> dict[str, Any]:
    return {
        "success": True,
        "parameters": writer.parameters(),
        "types": writer.parameter_types(),
    }
