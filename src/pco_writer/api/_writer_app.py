"""The writer REST API: ``build_app(writer)`` over the writer's state object."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request, Response

from pco_writer import __version__
from pco_writer.api._auth import token_required
from pco_writer.api._errors import install_error_handlers, read_json
from pco_writer.api._serving import BodyLimit
from pco_writer.errors import NotFoundError
from pco_writer.exit_record import describe_end
from pco_writer.preview import Preview

__all__ = ["END_WAIT_S", "WriterLike", "build_app"]

END_WAIT_S = 2.0
"""How long ``/stop`` and ``/kill`` wait for the state they lead to before they answer."""
_RUNNING = ("receiving", "writing")
_ENDED = ("finished", "error")  # set once the files are closed, before the done callbacks


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

    def preview(self) -> Preview | None: ...  # noqa: D102


def build_app(writer: WriterLike, token: str = "", end_wait: float = END_WAIT_S) -> FastAPI:
    """The REST API of one writer process.

    Args:
        writer: the writer whose state the API reports and drives.
        token: when set, ``/stop``, ``/kill`` and ``POST /parameters`` need it in the
            ``X-PCO-Writer-Token`` header.
        end_wait: seconds ``/stop`` and ``/kill`` wait for the state they lead to.
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
    async def stop() -> dict[str, Any]:
        """Stop receiving; what is buffered is still written, then the file is closed.

        Answers with the state reached within a moment (``finished``, ``waiting for
        parameters``, or ``writing`` while the buffer is still being written), the counts and
        a ``message`` such as ``stopped: 120 written``.
        """
        writer.stop()
        await _until(lambda: str(writer.status) not in _RUNNING, end_wait)
        return {"success": True, "status": str(writer.status), "value": "Ok", **_end(writer)}

    @app.get("/kill", dependencies=guarded)
    async def kill() -> dict[str, Any]:
        """Stop now: drop what is not yet written, close the file cleanly, exit.

        ``status`` is ``killed`` (as pco_rclient expects); ``writer_status`` is the state
        reached within a moment and ``message`` says what became of the frames, e.g.
        ``killed: 5169 written, 1049 dropped``.
        """
        writer.kill()
        await _until(lambda: writer.done, end_wait)
        answer = {"success": True, "status": "killed", "value": "Ok", **_end(writer)}
        return {**answer, "writer_status": str(writer.status)}

    @app.get("/preview", response_class=Response, responses=PNG_RESPONSES)
    def preview() -> Response:
        """A recent frame as a PNG (downsampled, contrast stretched; at most one new frame
        every 0.5 s); its id in the ``X-Frame-Id`` header. 404 before the first frame."""
        return preview_response(writer.preview(), "this acquisition has written no frame yet")

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


async def _until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait (without holding the event loop) until ``condition`` holds, at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def _end(writer: WriterLike) -> dict[str, Any]:
    """The counts of a run that was told to end, and one line that says how it went."""
    stats = writer.statistics()
    keys = ("end_reason", "n_written_frames", "n_lost_frames", "n_dropped_frames")
    ended = writer.done or str(writer.status) in _ENDED  # ended: its end reason is set
    message = (
        describe_end(stats)
        if ended
        else (f"{stats.get('n_written_frames', 0)} written so far; the writer is {writer.status}")
    )
    return {**{k: stats[k] for k in keys if k in stats}, "message": message}


PNG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "the PNG; X-Frame-Id names the frame"},
    404: {"description": "no frame yet"},
}
"""The answers of a preview route, for the OpenAPI document."""


def preview_response(preview: Preview | None, missing: str) -> Response:
    """A preview as a PNG answer, which frame it shows in its headers.

    Raises:
        NotFoundError: ``preview`` is None; ``missing`` says why.
    """
    if preview is None:
        raise NotFoundError(missing)
    headers = {
        "X-Frame-Id": str(preview.frame_id),
        "X-Frame-Index": str(preview.index),
        "X-Frame-Shape": "x".join(map(str, preview.shape)),
        "Cache-Control": "no-store",
    }
    return Response(preview.png, media_type="image/png", headers=headers)


def _parameters_answer(writer: WriterLike) -> dict[str, Any]:
    return {
        "success": True,
        "parameters": writer.parameters(),
        "types": writer.parameter_types(),
    }
