"""The writer REST API: ``build_app(writer)`` over the writer's state object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, Request

from pco_writer import __version__
from pco_writer.api._errors import install_error_handlers, read_json
from pco_writer.api._serving import BodyLimit
from pco_writer.errors import ConfigError

__all__ = ["WriterLike", "build_app", "check_parameter_types"]


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


_NX_TYPES: dict[str, tuple[type, ...]] = {
    "NX_CHAR": (str,),
    "NX_FLOAT": (int, float),
    "NX_NUMBER": (int, float),
    "NX_INT": (int,),
    "NX_UINT": (int,),
    "NX_POSINT": (int,),
    "NX_BOOLEAN": (bool,),
}


def check_parameter_types(values: dict[str, Any], types: dict[str, str]) -> None:
    """Refuse a value whose JSON type does not fit its parameter's NeXus type.

    Raises:
        ConfigError: naming the parameter, its type and the value.
    """
    for name, value in values.items():
        nx_type = types.get(name)
        allowed = _NX_TYPES.get(nx_type or "")
        if allowed is None:
            continue  # unknown names are the writer's to refuse
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            raise ConfigError(
                f"parameter {name!r} is {nx_type}; {value!r} ({type(value).__name__}) "
                "does not fit, send a value of that type"
            )
        minimum = {"NX_UINT": 0, "NX_POSINT": 1}.get(nx_type or "")
        if minimum is not None and isinstance(value, int) and value < minimum:
            raise ConfigError(f"parameter {name!r} is {nx_type}; {value!r} is too small")


def build_app(writer: WriterLike) -> FastAPI:
    """The REST API of one writer process.

    Args:
        writer: the writer whose state the API reports and drives.
    """
    app = FastAPI(
        title="pco-writer: writer API",
        version=__version__,
        description="Status, statistics and control of one acquisition.",
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit)

    @app.get("/status")
    def status() -> dict[str, Any]:
        """The writer's status: receiving, writing, waiting for parameters, finished, error."""
        answer = {"success": True, "status": str(writer.status), "value": "Ok"}
        if writer.error:
            answer["error"] = writer.error
        return answer

    @app.get("/statistics")
    def statistics() -> dict[str, Any]:
        """Counters of the acquisition so far; rates in frames per second."""
        return {**writer.statistics(), "success": True}

    @app.get("/stop")
    def stop() -> dict[str, Any]:
        """Stop receiving; what is buffered is still written, then the file is closed."""
        writer.stop()
        return {"success": True, "status": str(writer.status), "value": "Ok"}

    @app.get("/kill")
    def kill() -> dict[str, Any]:
        """Stop now: drop what is not yet written, close the file cleanly, exit."""
        writer.kill()
        return {"success": True, "status": "killed", "value": "Ok"}

    @app.get("/parameters")
    def get_parameters() -> dict[str, Any]:
        """The layout's parameters: their values and NeXus types."""
        return _parameters_answer(writer)

    @app.post("/parameters")
    async def set_parameters(request: Request) -> dict[str, Any]:
        """Set layout parameters from a JSON object; unknown names or wrong types give 422."""
        values = await read_json(request)
        check_parameter_types(values, writer.parameter_types())
        writer.set_parameters(values)
        return {**_parameters_answer(writer), "message": "Parameters set."}

    return app


def _parameters_answer(writer: WriterLike) -> dict[str, Any]:
    return {
        "success": True,
        "parameters": writer.parameters(),
        "types": writer.parameter_types(),
    }
