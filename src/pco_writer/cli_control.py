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
    p = commands.add_parser("server", help="the control server that starts the writers")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=9901, help="port without --config; 0 = any")
    p.add_argument("--config", type=Path, default=None, help="cameras (YAML or JSON)")
    p.add_argument("--data-root", type=Path, default=None, help="outputs go below it (cwd)")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="shared secret for state-changing routes (else $PCO_WRITER_TOKEN)",
    )
    p.add_argument(
        "--allow-user-switch",
        action="store_true",
        help="run writers as the request's user_id (root only)",
    )
    p.set_defaults(handler=_run_server)


def _run_server(args: argparse.Namespace) -> int:
    from pco_writer.control import ControlServer, LogBuffer, load_config, setup_logging
    from pco_writer.errors import ConfigError

    setup_logging(LogBuffer(1), args.verbose)
    try:
        config = load_config(args.config) if args.config else None
        token = _server_token(args.token_file or (config.token_file if config else None))
        switch = args.allow_user_switch or bool(config and config.allow_user_switch)
        server = ControlServer(
            args.host, args.port, config, args.data_root, token=token, allow_user_switch=switch
        ).start()
    except (ConfigError, OSError) as exc:
        log.error("cannot start the control server: %s", exc)
        return EXIT_USAGE
    print(f"control server at {' '.join(s.url for s in server.servers)}", flush=True)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    log.info("shutting down: stopping the writers")
    server.stop()
    return EXIT_OK


def _server_token(path: Path | None) -> str:
    from pco_writer.auth import read_token, token_from_env

    return read_token(path) if path is not None else token_from_env()


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=_DEFAULT_SERVER, help="control server URL")
    p.add_argument("--writer-port", type=int, default=9555, help="the writer's REST port")


def add_acquire(commands: Any) -> None:
    """``pco-writer acquire``: one acquisition through the control server."""
    p = commands.add_parser("acquire", help="one acquisition through the control server")
    _add_server_flags(p)
    p.add_argument("--connect", default="tcp://127.0.0.1:8080", help="camera PUSH address")
    p.add_argument("--output", required=True, help="output file on the server's host")
    p.add_argument("--n-frames", type=int, required=True, help="frames to write")
    p.add_argument("--dataset-name", default="data")
    p.add_argument("--max-frames-per-file", type=int, default=0)
    p.add_argument("--user-id", type=int, default=-1)
    p.add_argument(
        "--compression", default="none", help="none, bitshuffle-lz4 or blosc-lz4"
    )  # checked by the client
    p.add_argument("--layout", default="tomcat", help="tomcat, nxtomo or a layout file")
    p.add_argument(
        "--no-swmr", dest="swmr", action="store_false",
        help="write the HDF5 1.8 format (for readers older than HDF5 1.10): no live reading",
    )  # fmt: skip
    p.set_defaults(handler=_run_acquire)


def _run_acquire(args: argparse.Namespace) -> int:
    from pco_writer.client import AcquisitionError, ClientError

    try:
        with _client(args) as pco:
            pco.configure(
                output_file=args.output, dataset_name=args.dataset_name, n_frames=args.n_frames,
                user_id=args.user_id, max_frames_per_file=args.max_frames_per_file,
                compression=args.compression, layout=args.layout, swmr=args.swmr,
            )  # fmt: skip
            pco.start()
            stats = pco.wait()
    except AcquisitionError as exc:
        print(f"acquisition failed: {exc}")
        return EXIT_FAILED
    except ClientError as exc:
        print(f"error: {exc}")
        return EXIT_USAGE
    print(_summary(stats.as_dict()))
    return EXIT_OK


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
    from pco_writer.client import ClientError

    try:
        with _client(args) as pco:
            answer = pco.stop() if route == "stop" else pco.kill()
            if answer is None:
                print(f"no writer is running on port {args.writer_port}")
                return EXIT_OK
            print(f"{route}: {pco.get_status()}")
    except ClientError as exc:
        print(f"error: {exc}")
        return EXIT_USAGE
    return EXIT_OK


def add_demo(commands: Any) -> None:
    """``pco-writer demo``: camera simulator, control server, client, file, in one go."""
    p = commands.add_parser("demo", help="run the whole chain once: camera, server, client")
    p.add_argument("--workdir", type=Path, default=None, help="where to write (a temp dir)")
    p.add_argument("--frames", type=_positive_int, default=50, help="frames to acquire (50)")
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

    logging.getLogger("httpx").setLevel(logging.WARNING)
    host = args.server.split("://", 1)[-1].rsplit(":", 1)[0]
    return PcoWriter(
        connection_address=getattr(args, "connect", "tcp://127.0.0.1:8080"),
        flask_api_address=args.server,
        writer_api_address=f"http://{host}:{args.writer_port}",
    )


def _summary(stats: dict[str, Any]) -> str:
    keys = ("status", "n_written_frames", "n_frames", "n_lost_frames", "duration_sec",
            "writing_rate", "output_file", "dataset_name", "end_reason")  # fmt: skip
    return json.dumps({k: stats.get(k) for k in keys}, indent=2)


COMMANDS: list[Callable[[Any], None]] = [
    add_server, add_acquire, add_status, add_stop, add_kill, add_demo,
]  # fmt: skip
