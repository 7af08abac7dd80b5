"""Sub-commands of the control plane: server, acquire, status, stop, kill, demo."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS"]

log = logging.getLogger("pco_writer")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_DEFAULT_SERVER = "http://127.0.0.1:9901"


def add_server(commands: Any) -> None:
    """``pco-writer server``: the control server that starts one writer per acquisition."""
    p = commands.add_parser(
        "server", help="the control server that starts the writers",
        description="The control server: starts one writer process per acquisition, serves "
        "the routes pco_rclient calls, a status page at /, GET /preview and GET /metrics. "
        "Its settings come from --config FILE (docs/deploying.md); a flag given here wins "
        "over the file.",
    )  # fmt: skip
    p.add_argument(
        "--config", type=Path, default=None,
        help="the settings file: host, port, data root, token file, user switching, limits, "
        "log format, cameras (YAML or JSON; the original deployment's pco_config.json too; "
        "docs/deploying.md) (default: none: one server on --port for any camera)",
    )  # fmt: skip
    p.add_argument(
        "--camera", default=None, metavar="NAME",
        help="serve only this camera of --config, by name (or N for pcoN, as the original "
        "deployment_server.py -c N) (default: every camera of the file)",
    )  # fmt: skip
    p.add_argument(
        "--host",
        default=None,
        help="the address to listen on; when not given, the settings file's host "
        "(default: 127.0.0.1)",
    )
    p.add_argument(
        "--port", type=int, default=None,
        help="the port, when there are no cameras; 0 picks a free one; when not given, "
        "the settings file's port (default: 9901)",
    )  # fmt: skip
    p.add_argument(
        "--data-root", type=Path, default=None,
        help="output files must lie below it; when not given, the settings file's data_root "
        "(default: the current folder)",
    )  # fmt: skip
    p.add_argument("--token-file", type=Path, default=None,
                   help="a file holding the shared secret that start, stop, kill and "
                   "parameters need; when not given, the settings file's token_file "
                   "(default: $PCO_WRITER_TOKEN; unset: no token)")  # fmt: skip
    p.add_argument(
        "--allow-user-switch", action="store_true", default=None,
        help="run writers as the request's user_id (root only)",
    )  # fmt: skip
    p.add_argument(
        "--log-format", choices=("plain", "json"), default=None,
        help="plain key=value lines, or one JSON object per line for journald and Elastic; "
        "when not given, the settings file's log_format (default: plain)",
    )  # fmt: skip
    p.add_argument("--max-writers", type=int, default=None, metavar="N",
                   help="the most writer processes one acquisition may ask for (n_writers) "
                   "(default: 8, or the configuration file's max_writers)")  # fmt: skip
    p.set_defaults(handler=_run_server)


def _run_server(args: argparse.Namespace) -> int:
    from pco_writer.control import ControlServer, LogBuffer, setup_logging
    from pco_writer.errors import ConfigError

    setup_logging(LogBuffer(1), args.verbose, args.log_format or "plain")
    try:
        config = _server_settings(args)
        if config.log_format != (args.log_format or "plain"):
            setup_logging(LogBuffer(1), args.verbose, config.log_format)
        token = _server_token(config.token_file)
        server = ControlServer.from_config(config, token, log_scope="").start()  # all its log
    except (ConfigError, OSError) as exc:
        log.error("cannot start the control server: %s", exc)
        return EXIT_USAGE
    urls = " ".join(s.url for s in server.servers)
    if config.log_format == "json":  # stdout is JSON lines only (journald, Elastic)
        log.info("control server at %s (status page at /, metrics at /metrics)", urls)
    else:
        print(f"control server at {urls}", flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    log.info("shutting down: stopping the writers")
    server.stop()
    return EXIT_OK


def _server_settings(args: argparse.Namespace) -> Any:
    """The settings file, if any, with the flags given on top."""
    from pco_writer.control import load_config, server_config
    from pco_writer.errors import ConfigError

    flags = {
        "host": args.host, "port": args.port, "data_root": args.data_root,
        "token_file": args.token_file, "allow_user_switch": args.allow_user_switch,
        "log_format": args.log_format, "max_writers": args.max_writers,
    }  # fmt: skip
    if args.config is not None:
        return load_config(args.config, args.camera, **flags)
    if args.camera is not None:
        raise ConfigError("--camera NAME needs --config FILE: it names one of its cameras")
    return server_config(None, "command line", **flags)


def _server_token(path: Path | None) -> str:
    from pco_writer.auth import read_token, token_from_env

    return read_token(path) if path is not None else token_from_env()


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=_DEFAULT_SERVER, help="the control server's URL")
    p.add_argument("--writer-port", type=int, default=9555,
                   help="the writer's REST port, which names the acquisition")  # fmt: skip


def add_acquire(commands: Any) -> None:
    """``pco-writer acquire``: one acquisition through the control server.

    Its settings are the start request's (:class:`~pco_writer.settings.RequestSettings`),
    flags made by the same code as ``pco-writer write``'s, with their defaults.
    """
    from pco_writer.settings import RequestSettings
    from pco_writer.writer_command import add_settings_flags

    p = commands.add_parser(
        "acquire", help="one acquisition through the control server",
        description="One acquisition through the control server, with a progress bar; ends "
        "with a line that says what became of the frames and a JSON summary. Ctrl-C stops "
        "the writer (it writes what it has), a second Ctrl-C kills it. Exit 1 when the "
        "acquisition failed (also when no frame was written), 2 for a bad setting.",
    )  # fmt: skip
    _add_server_flags(p)
    p.add_argument("--connect", default="tcp://127.0.0.1:8080",
                   help="where the camera binds PUSH, tcp://HOST:PORT")  # fmt: skip
    p.add_argument(
        "--output",
        required=True,
        help="the output file, on the server's host (below its data root)",
    )
    group = p.add_argument_group("acquisition settings")
    add_settings_flags(group, RequestSettings)
    group.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a layout parameter, written into the file; repeat for several "
        "(e.g. --param sample_name=foam --param distance=120) (default: none)",
    )
    p.set_defaults(handler=_run_acquire)


def _run_acquire(args: argparse.Namespace) -> int:
    from pco_writer.client import AcquisitionError, ClientError

    try:
        with _client(args) as pco:
            pco.configure(output_file=args.output, **_acquire_settings(args))
            stats = _run_stopping_on_ctrl_c(pco)
    except AcquisitionError as exc:
        print(f"acquisition failed: {exc}")
        return EXIT_FAILED
    except ClientError as exc:
        print(f"error: {exc}")
        return EXIT_USAGE
    print(stats.summary())
    print(_summary(stats.as_dict()))
    return EXIT_FAILED if stats.end_reason == "killed" else EXIT_OK  # frames were dropped


def _acquire_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings flags of ``acquire``, checked by the start request's model, with the
    ``--param`` values in the layout's types where this host can read the layout."""
    from pco_writer.client._validate import local_layout_parameters
    from pco_writer.errors import ConfigError
    from pco_writer.layouts import parameter_from_text
    from pco_writer.settings import RequestSettings
    from pco_writer.writer_command import settings_from_args

    settings = settings_from_args(args, RequestSettings).model_dump()
    types = (local_layout_parameters(settings["layout"]) or {}) if args.param else {}
    for item in args.param:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {item!r}: write NAME=VALUE, e.g. sample_name=foam")
        settings["parameters"][name.strip()] = parameter_from_text(text, types.get(name.strip()))
    return settings


def _run_stopping_on_ctrl_c(pco: Any) -> Any:
    """Start and wait with the progress bar; Ctrl-C stops the writer (a writer left running
    would hold the camera), a second one kills it."""
    try:
        pco.start()
        return pco.wait()
    except KeyboardInterrupt:
        print("Ctrl-C: stopping the writer (it writes what it has; Ctrl-C again kills it)")
    try:
        if pco.stop(wait=False) is None:  # interrupted before the writer ran
            raise KeyboardInterrupt
        return pco.wait(progress=False)
    except KeyboardInterrupt:
        print("Ctrl-C: killing the writer")
        pco.kill()
        return pco.wait(progress=False)


def add_status(commands: Any) -> None:
    """``pco-writer status``: the writers the control server knows."""
    p = commands.add_parser("status", help="the control server's writers and their status")
    _add_server_flags(p)
    p.set_defaults(handler=_run_status)


def _run_status(args: argparse.Namespace) -> int:
    import httpx

    try:
        with httpx.Client(base_url=args.server, timeout=3) as http:
            writers = http.get("/writers").json()["writers"]
            for writer in writers:
                writer["status"] = http.get(f"/status/{writer['port']}").json().get("status")
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        print(f"error: cannot read the control server at {args.server}: {exc}")
        return EXIT_USAGE
    if not writers:
        print(f"{args.server}: no acquisition yet")
    for w in writers:
        state = "running" if w["alive"] else "exited"
        print(f"port {w['port']}: {w['status']:<10} pid {w['pid']} {state} -> "
              f"{w['output_file']} ({w['dataset_name']})")  # fmt: skip
    return EXIT_OK


def add_stop(commands: Any) -> None:
    """``pco-writer stop``: stop the writer (it writes what it has received)."""
    p = commands.add_parser("stop", help="stop the writer; it writes what it has")
    _add_server_flags(p)
    p.set_defaults(handler=lambda args: _run_end(args, "stop"))


def add_kill(commands: Any) -> None:
    """``pco-writer kill``: stop the writer now (what is not written is dropped)."""
    p = commands.add_parser("kill", help="stop the writer now, dropping what is not written")
    _add_server_flags(p)
    p.set_defaults(handler=lambda args: _run_end(args, "kill"))


def _run_end(args: argparse.Namespace, route: str) -> int:
    """Stop or kill, wait for the end (bounded) and say what became of the frames."""
    from pco_writer.client import ClientError
    from pco_writer.client._pco_writer import RUNNING, WAITING

    try:
        with _client(args) as pco:
            answer = pco.stop() if route == "stop" else pco.kill()
            if answer is None:
                print(f"no writer is running on port {args.writer_port}")
                return EXIT_OK
            status = pco.get_status_writer()
    except ClientError as exc:
        print(f"error: {exc}")
        return EXIT_USAGE
    if status in RUNNING or status == WAITING:
        print(f"{route}: asked, but the writer is still {status}: {answer.get('message', '')}; "
              f"see `pco-writer status --server {args.server}`")  # fmt: skip
        return EXIT_FAILED
    print(answer.get("message") or f"{route}: {status}")
    return EXIT_OK


def add_demo(commands: Any) -> None:
    """``pco-writer demo``: camera simulator, control server, client, file, in one go."""
    p = commands.add_parser("demo", help="run the whole chain once: camera, server, client")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to write (default: a temporary folder, removed after)",
    )
    p.add_argument("--frames", type=_positive_int, default=50, help="frames to acquire")
    p.set_defaults(handler=_run_demo)


def _positive_int(text: str) -> int:
    """An argparse type: the demo has no stop button, so 0 (for ever) is no choice."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} frames: give at least 1")
    return value


def _run_demo(args: argparse.Namespace) -> int:
    import tempfile

    from pco_writer.demo import run_demo
    from pco_writer.errors import PcoWriterError

    try:
        if args.workdir is not None:
            run_demo(args.workdir, n_frames=args.frames)
            return EXIT_OK
        with tempfile.TemporaryDirectory(prefix="pco-writer-demo-") as tmp:
            run_demo(Path(tmp), n_frames=args.frames)
    except PcoWriterError as exc:
        log.error("the demo failed: %s", exc)
        return EXIT_FAILED
    return EXIT_OK


def _client(args: argparse.Namespace) -> Any:
    from pco_writer.client import PcoWriter

    host = args.server.split("://", 1)[-1].rsplit(":", 1)[0]
    return PcoWriter(
        connection_address=getattr(args, "connect", "tcp://127.0.0.1:8080"),
        flask_api_address=args.server,
        writer_api_address=f"http://{host}:{args.writer_port}",
    )


def _summary(stats: dict[str, Any]) -> str:
    keys = ("status", "n_written_frames", "n_frames", "n_lost_frames", "n_dropped_frames",
            "lost_by_reason", "duration_sec", "writing_rate", "output_file", "dataset_name",
            "end_reason")  # fmt: skip
    return json.dumps({k: stats.get(k) for k in keys}, indent=2)


COMMANDS: list[Callable[[Any], None]] = [
    add_server, add_acquire, add_status, add_stop, add_kill, add_demo,
]  # fmt: skip
