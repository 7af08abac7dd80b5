"""The ``pco-writer`` command line: thin over the package.

Exit codes: 0 a normal finish, 1 the acquisition failed, 2 a bad setting (nothing written).
A mistake at the door (a bad flag, a taken port, a server that refuses) is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["main", "build_parser"]

log = logging.getLogger("pco_writer")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_KILL_WAIT_S = 10.0  # a killed writer drops its buffer: it ends in well under a second
_DESCRIPTION = """\
Receives a camera's frames (PSI Array-1.0 over ZeroMQ) and writes them to HDF5 in the TOMCAT
or NXtomo layout, or a layout of your own; controlled over REST by a control server.

Exit codes: 0 a normal finish, 1 the acquisition failed, 2 a bad setting (nothing written).
The user guide: docs/guide.md. Each command has its own --help."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    from pco_writer.errors import PcoWriterError

    argv = sys.argv[1:] if argv is None else list(argv)
    # the writer takes its signals before the parser's imports (~0.2 s): a SIGTERM while it
    # starts is then a clean stop, not a silent death (only the interpreter's start is left)
    signals = _Signals() if _command_in(argv) == "write" else None
    args = build_parser().parse_args(argv)
    args.signals = signals
    _setup_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.handler
    python_format, warnings.formatwarning = warnings.formatwarning, _warning_line
    try:
        return handler(args)
    except PcoWriterError as exc:  # a mistake at the door: one line, no traceback
        print(f"pco-writer {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"pco-writer {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.formatwarning = python_format


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is no option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command; every option's help shows its default."""
    parser = argparse.ArgumentParser(
        prog="pco-writer", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the paragraphs
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(required=True, metavar="COMMAND", dest="command")
    _add_write(commands)
    _add_simulate(commands)
    _add_repair(commands)
    for add in _extra_commands():
        add(commands)
    for sub in _subparsers(parser):
        sub.formatter_class = DefaultsShown
    return parser


class DefaultsShown(argparse.HelpFormatter):
    """Help that shows each option's default, unless its text already does (the settings'
    flags do)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = action.option_strings and not action.required and "default" not in text
        if shown and not any(default is none for none in (None, False, argparse.SUPPRESS)):
            value = " ".join(map(str, default)) if isinstance(default, list) else repr(default)
            value = value if isinstance(default, list | int | float) else str(default) or "''"
            text += f" (default: {value.replace('%', '%%')})"
        return text


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every sub-command's parser, at any depth (``layout check`` too)."""
    found = []
    for action in parser._actions:  # argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += [sub, *_subparsers(sub)]
    return found


def _extra_commands() -> list[Callable[[Any], None]]:
    """Sub-commands of the control plane and of layouts, registered by their own modules."""
    from pco_writer import cli_control
    from pco_writer.layouts import _cli as cli_layout

    return [*cli_control.COMMANDS, *cli_layout.COMMANDS]


def _add_write(commands: Any) -> None:
    from pco_writer.writer_command import add_write_arguments

    p = commands.add_parser(
        "write", help="receive one acquisition and write it to HDF5",
        description="Receive one acquisition and write it to HDF5. Ends with one JSON exit "
        "record on stdout (status, end_reason, error, statistics).",
    )  # fmt: skip
    add_write_arguments(p)
    p.set_defaults(handler=_run_write)


def _add_simulate(commands: Any) -> None:
    p = commands.add_parser(
        "simulate", help="a simulated camera, or replay a capture folder",
        description="A camera: binds PUSH and sends Array-1.0 frames (noisy images of a sample "
        "in a beam) to whichever writer connects. Nothing is dropped: while no writer "
        "receives (none connected yet, between acquisitions, or its buffer full) the "
        "simulator waits; with --fps, the frames that could not go out on time go out late, "
        "then the asked rate is kept again (no burst to catch up).",
    )  # fmt: skip
    p.add_argument(
        "--bind",
        default="tcp://127.0.0.1:8080",
        help="the PUSH address to bind, tcp://HOST:PORT (the writer's --connect)",
    )
    p.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=[2160, 2560],
        metavar="N",
        help="image shape, rows then columns (a pco.edge 5.5)",
    )
    p.add_argument("--dtype", default="uint16", help="pixel type (a numpy name)")
    p.add_argument(
        "--fps",
        type=float,
        default=0.0,
        help="frames per second; 0 sends as fast as the writer takes them",
    )
    p.add_argument("--frames", type=int, default=100, help="frames to send; 0 until stopped")
    p.add_argument(
        "--start-frame",
        type=int,
        default=0,
        help="id of the first frame (a real camera's stream does not start at 0)",
    )
    p.add_argument("--replay", type=Path, default=None, metavar="FOLDER",
                   help="send a capture folder (NNNNNN_000.raw headers, NNNNNN_001.raw data) "
                   "instead of simulated frames (default: simulated frames)")  # fmt: skip
    p.set_defaults(handler=_run_simulate)


def _add_repair(commands: Any) -> None:
    p = commands.add_parser(
        "repair", help="make the file of a writer that died readable, and record its end"
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE",
        help="HDF5 file(s); a roll-over template (scan_%%03d.h5) names each of its files",
    )  # fmt: skip
    p.add_argument(
        "--layout", default=None,
        help="the layout the file was written in (default: the built-in one it fits)",
    )  # fmt: skip
    p.add_argument(
        "--dataset-name", default=None, help="the acquisition to end (default: every one not ended)"
    )
    p.add_argument("--reason", default="the writer died", help="recorded in the file")
    p.add_argument("--by", default="pco-writer repair", help="recorded in the file")
    p.set_defaults(handler=_run_repair)


def _run_repair(args: argparse.Namespace) -> int:
    from pco_writer.errors import PcoWriterError
    from pco_writer.h5 import OutputFiles
    from pco_writer.h5._repair import repair_file
    from pco_writer.layouts import load_layout

    try:
        layout = load_layout(args.layout) if args.layout else None
    except PcoWriterError as exc:
        log.error("cannot repair: %s", exc)
        return EXIT_USAGE
    failed = False
    for name in args.files:
        files = OutputFiles(name)
        numbers = files.existing_numbers()
        if not numbers:
            log.error("cannot repair %s: no such file", name)
            failed = True
        for number in numbers:
            try:
                done = repair_file(files.path(number), layout, args.reason, args.by,
                                   args.dataset_name)  # fmt: skip
                print(done.describe())
            except PcoWriterError as exc:
                log.error("%s", exc)
                failed = True
    return EXIT_FAILED if failed else EXIT_OK


def _run_write(args: argparse.Namespace) -> int:
    """The writer process: whatever the end, its last output is one exit record."""
    signals = getattr(args, "signals", None) or _Signals()  # a SIGTERM while it starts: clean
    log.info("starting the writer (pid %d)", os.getpid())
    from pco_writer.exit_record import ExitRecord

    shutdown: Callable[[], None] | None = None
    try:
        code, record, shutdown = _write(args, signals)
    except Exception as exc:  # noqa: BLE001 - even a bug must end with a record
        log.exception("the writer failed")
        error = f"unexpected {type(exc).__name__}: {exc}"
        code, record = EXIT_FAILED, ExitRecord(status="error", end_reason=f"error: {error}",
                                               error=error)  # fmt: skip
    try:
        print(record.model_dump_json(indent=2), flush=True)
    except OSError:  # the control server that read our output is gone (crashed, restarted)
        log.warning("could not print the exit record: nobody reads this writer's output")
    if shutdown is not None:
        shutdown()  # after the record: the API lingers a moment so that pollers see the end
    return code


def _write(
    args: argparse.Namespace, signals: _Signals
) -> tuple[int, Any, Callable[[], None] | None]:
    """Run one acquisition: the exit code, the exit record and the services' shutdown."""
    from pco_writer._malloc import tune_for_streaming
    from pco_writer.auth import token_from_env
    from pco_writer.errors import PcoWriterError
    from pco_writer.exit_record import STOPPED_AT_START, ExitRecord
    from pco_writer.settings import AcquisitionSettings
    from pco_writer.writer import MultiWriter, Writer
    from pco_writer.writer_command import settings_from_args

    tune_for_streaming()  # before libzmq's threads allocate anything
    try:
        token = token_from_env()  # from the control server, in the environment: not shown by ps
        settings: AcquisitionSettings = settings_from_args(args)
        # one process, or one that runs several writers (ADR 0042); the buffer: ~0.5 s per GiB
        writer = MultiWriter(settings) if settings.n_writers > 1 else Writer(settings)
        if signals.count:
            log.warning("stopped by a signal before the acquisition started; nothing written")
            return EXIT_OK, ExitRecord(status="finished", end_reason=STOPPED_AT_START), None
        writer.start()
    except (PcoWriterError, ValueError) as exc:
        log.error("cannot start the acquisition: %s", exc)
        return EXIT_USAGE, ExitRecord.refused(str(exc)), None
    signals.attach(writer.stop, writer.kill)
    try:
        serve = _start_services(args, writer, token)
    except OSError as exc:  # e.g. the REST port is taken: nobody could control this writer
        message = (
            f"cannot serve the writer API on {args.rest_host}:{args.rest_port}: {exc}; "
            "choose a free --rest-port (0 picks one)"
        )
        log.error("%s", message)
        writer.kill()
        writer.wait(_KILL_WAIT_S)
        return EXIT_USAGE, ExitRecord.refused(message), None
    while not writer.wait(0.5):
        pass
    code = EXIT_FAILED if writer.error else EXIT_OK
    return code, ExitRecord.of_run(writer.statistics()), serve


def _start_services(args: argparse.Namespace, writer: Any, token: str) -> Callable[[], None] | None:
    """Start the REST API and control reporting, when asked; returns their shutdown."""
    if not args.rest_port and not args.control_url:
        return None
    from pco_writer.api import serve_writer

    return serve_writer(
        writer, args.rest_host, args.rest_port or None, args.control_url, token=token
    )


def _run_simulate(args: argparse.Namespace) -> int:
    from pco_writer.simulate import CameraSimulator, replay_capture

    if args.replay is not None:
        n = replay_capture(args.bind, args.replay, args.fps)
        log.info("replayed %d messages from %s", n, args.replay)
        return EXIT_OK
    sim = CameraSimulator(
        args.bind, tuple(args.shape), args.dtype, args.fps, args.frames, args.start_frame
    )
    _Signals().attach(sim.stop, sim.stop)
    try:
        log.info("camera bound at %s", sim.bind())
        n = sim.run()
    finally:
        sim.close()
    late = f", {sim.n_late} of them late (nobody received them on time)" if sim.n_late else ""
    log.info("sent %d frames%s", n, late)
    return EXIT_OK


class _Signals:
    """SIGTERM/SIGINT: a graceful stop; a second one: stop now.

    Installed before anything slow happens, so that a signal that comes while the process
    starts (before there is anything to stop) is remembered instead of killing it silently.
    """

    def __init__(self) -> None:
        self.count = 0
        self._calls: list[Callable[[], None]] = []
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def attach(self, first: Callable[[], None], again: Callable[[], None]) -> None:
        """From now on, signals call ``first``, then ``again``; also for those already come."""
        self._calls = [first, again]
        for call in self._calls[: self.count]:
            call()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        what = "stopping" if self.count == 1 else "killing"
        log.warning("signal %d: %s", signum, what if self._calls else "not started yet")
        if self._calls:
            self._calls[min(self.count, 2) - 1]()


def _warning_line(message: Warning | str, *_: object, **__: object) -> str:
    """A warning on the command line: one line in the user's words, no source path."""
    return f"pco-writer: warning: {message}\n"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # httpx logs every request at INFO: a line per poll of a progress bar
        logging.getLogger("httpx").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
