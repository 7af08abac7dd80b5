"""One acquisition written by several writer processes (docs/decisions/0042-several-writers.md).

```
camera PUSH --ZeroMQ deals--> shard 0 (pco-writer write --shard) -> scan.data.part0.h5
                          \\--> shard 1 ...                        -> scan.data.part1.h5
MultiWriter (this process): REST API of the acquisition; reads the parts, places their
frames in the acquisition's ledger, writes the master scan.h5 (frames: a virtual dataset)
```

To the control server and pco_rclient a ``MultiWriter`` is one writer: the same REST API,
summed statistics with a per-writer breakdown, stop and kill reaching every shard.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from pco_writer.api._serving import bind_socket
from pco_writer.auth import TOKEN_HEADER, token_from_env
from pco_writer.errors import OutputError
from pco_writer.exit_record import read_exit_record
from pco_writer.h5 import H5Sink, OutputFiles
from pco_writer.h5._layout_file import H5Layout
from pco_writer.h5._master import MasterBuilder
from pco_writer.h5._part import PartLayout, part_path, read_row
from pco_writer.h5._superblock import clear_open_flags
from pco_writer.h5._virtual import VirtualFrames
from pco_writer.ledger import FrameLedger
from pco_writer.preview import Preview, preview_png
from pco_writer.settings import AcquisitionSettings, Shard
from pco_writer.statistics import LatencyHistogram
from pco_writer.writer._acquisition import Acquisition, WriterStatus, peak_rss_bytes

__all__ = ["MultiWriter"]

log = logging.getLogger(__name__)

_ROUND_S = 0.25  # how often the parts are read
_STATS_S = 0.5  # how often the shards' statistics are asked for
_START_TIMEOUT_S = 30.0
_HTTP = httpx.Timeout(4.0, connect=0.5)  # a writer's /stop and /kill answer within ~2 s


class _Shard:
    """One writer process of the acquisition."""

    def __init__(self, index: int, settings: AcquisitionSettings, port: int, python: str):
        self.index = index
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.statistics: dict[str, Any] = {}
        self.record: dict[str, Any] | None = None
        self.process = subprocess.Popen(
            [python, "-m", "pco_writer.cli", "write", "--settings", settings.model_dump_json(),
             "--rest-host", "127.0.0.1", "--rest-port", str(port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=_end_with_parent,  # noqa: PLW1509 - only prctl, before exec
        )  # fmt: skip
        self._out = ""
        threading.Thread(target=self._pump, name=f"shard-{index}-log", daemon=True).start()
        threading.Thread(target=self._read_out, name=f"shard-{index}-out", daemon=True).start()

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def died(self) -> str:
        """Why it ended badly ("" while it runs or after a good end)."""
        code = self.process.poll()
        if code is None or code == 0:
            return ""
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"died ({signal.Signals(-code).name})"
            return f"died (signal {-code})"
        error = (self.record or {}).get("error") or f"exited with code {code}"
        return f"failed: {error}"

    def ask(self, http: httpx.Client, route: str) -> dict[str, Any] | None:
        """GET a route of its REST API; None when it does not answer."""
        try:
            answer = http.get(f"{self.url}/{route}").json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def signal(self, signum: int) -> None:
        """Send a signal, if it runs."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def _pump(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                if line.strip():
                    log.info("writer %d: %s", self.index, _message(line))

    def _read_out(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            self._out = self.process.stdout.read()
        record = read_exit_record(self._out)
        if record is not None:
            self.record = record.model_dump()
            if record.statistics:
                self.statistics = dict(record.statistics)


def _preview_of(http: httpx.Client, url: str) -> Preview | None:
    """A writer's ``GET /preview``, None when it has none or does not answer."""
    try:
        answer = http.get(f"{url}/preview")
    except (httpx.HTTPError, RuntimeError):  # RuntimeError: the client closed at the end
        return None
    if answer.status_code != 200:
        return None
    h = answer.headers
    shape = tuple(int(n) for n in h.get("x-frame-shape", "").split("x") if n)
    return Preview(answer.content, int(h.get("x-frame-id", -1)), int(h.get("x-frame-index", -1)),
                   shape)  # fmt: skip


def _message(line: str) -> str:
    """A writer's log line without its time stamp (ours is in front of it)."""
    parts = line.rstrip().split(" ", 2)
    return parts[2] if len(parts) == 3 and parts[0][:2].isdigit() else line.rstrip()


def _end_with_parent() -> None:
    """In the child: get SIGTERM (a graceful stop) when the acquisition process dies."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MultiWriter(Acquisition):
    """Receives one acquisition with ``settings.n_writers`` writer processes.

    Args:
        settings: the acquisition (``n_writers`` > 1).
        on_done: called once the master file is closed (status final).
        python: the interpreter that runs the writers.
    """

    def __init__(
        self,
        settings: AcquisitionSettings,
        on_done: Callable[[Any], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        super().__init__(settings, on_done)
        self._python = python
        self.ledger = FrameLedger(settings.n_frames, settings.max_frame_gap)
        self.files = OutputFiles.from_output(
            settings.output, settings.n_frames, settings.max_frames_per_file
        )
        self.parts = [
            part_path(self.files.template, settings.dataset_name, k)
            for k in range(settings.n_writers)
        ]
        self.frames = VirtualFrames(self.parts)
        self.sink = H5Sink(
            self.files, settings.dataset_name, self.ledger,
            layout=H5Layout(self.layout, self.parameter_set, settings.compression,
                            virtual=self.frames),
            flush_interval=settings.flush_interval,
            data_root=Path(settings.data_root) if settings.data_root else None,
        )  # fmt: skip
        self.builder = MasterBuilder(self.sink, self.frames, self.ledger, settings.flush_interval)
        self.shards: list[_Shard] = []
        self._preview: Preview | None = None
        self._token = token_from_env()
        headers = {TOKEN_HEADER: self._token} if self._token else {}
        self._http = httpx.Client(timeout=_HTTP, headers=headers)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="master")

    # -- the writer API (as Writer) ----------------------------------------------------------

    def start(self) -> None:
        """Check the output, start the writers and wait until each answers.

        Raises:
            ConfigError, OutputError: the master or a part cannot be written; nothing was.
        """
        self._check_can_start()
        self.sink.check()
        part_layout = PartLayout(self.settings.compression)
        for part in self.parts:
            self._check_place(part)
            part_layout.check(part, self.settings.dataset_name)
        self.shards = [self._spawn(k) for k in range(self.settings.n_writers)]
        try:
            self._await_shards()
        except BaseException:
            self._end_shards()
            raise
        self._status = WriterStatus.RECEIVING
        self._thread.start()
        log.info(
            "receiving from %s with %d writers into %s (%s), n_frames=%d",
            self.settings.connect, len(self.shards), self.files.template,
            self.settings.dataset_name, self.settings.n_frames,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop every writer; what they have is written, then the master is closed."""
        if self._status is WriterStatus.WAITING_FOR_PARAMETERS:
            self._give_up_waiting.set()
        self._stopping.set()
        self._tell_shards("stop", signal.SIGTERM)

    def kill(self) -> None:
        """Stop every writer now: they drop what they have not written."""
        self._give_up_waiting.set()
        self._killed.set()
        self._stopping.set()
        self._tell_shards("kill", signal.SIGTERM)

    def statistics(self) -> dict[str, Any]:
        """The acquisition's statistics: the master's frames, every writer's counts summed,
        and ``writers``, one entry per writer process."""
        snap = self.ledger.snapshot()
        per = [s.statistics for s in self.shards]
        invalid = sum((Counter(s.get("invalid_by_reason", {})) for s in per), Counter())
        invalid += Counter(snap.rejected_by_reason)
        # a frame a writer dropped never reached its part: the ledger here counts it among the
        # ids never received; the writer knows why
        by_writers = sum((Counter(s.get("lost_by_reason", {})) for s in per), Counter())
        by_writers.pop("never_received", None)  # a writer does not count others' ids
        dropped = by_writers + Counter(snap.dropped_by_reason)
        never = max(0, snap.n_never_received - sum(by_writers.values()))
        lost_by_reason = ({"never_received": never} if never else {}) | dict(dropped)
        n_dropped = sum(dropped.values())
        received = sum(int(s.get("n_received_frames", 0)) for s in per)
        t_first = self.timeline.t_start
        return {
            "n_frames": self.settings.n_frames,
            "dataset_name": self.settings.dataset_name,
            "output_file": str(self.files.path(1)),
            "files": list(self.sink.written_paths),
            "parts": [str(p) for p in self.parts if p.exists()],  # a writer with no frame: none
            "user_id": self.settings.user_id,
            "end_reason": self.end_reason,
            "n_received_frames": received,
            "n_written_frames": snap.n_written,
            "n_lost_frames": never + n_dropped,
            "lost_by_reason": lost_by_reason,
            "n_dropped_frames": n_dropped,
            "n_invalid_frames": sum(invalid.values()),
            "invalid_by_reason": dict(invalid),
            "first_frame_id": snap.first_frame_id,
            "start_time": self.timeline.start_time,
            "end_time": self.timeline.end_time,
            "duration_sec": round(self.timeline.duration_sec, 3),
            "receiving_rate": round(sum(float(s.get("receiving_rate", 0)) for s in per), 3),
            "writing_rate": self.timeline.rate(snap.n_written, t_first),
            "status": self._status.value,
            "error": self.error,
            "buffer_used_bytes": sum(int(s.get("buffer_used_bytes", 0)) for s in per),
            "buffer_peak_bytes": sum(int(s.get("buffer_peak_bytes", 0)) for s in per),
            "peak_rss_bytes": max(  # of this process or of a writer, whichever is larger
                [peak_rss_bytes(), *(int(s.get("peak_rss_bytes", 0)) for s in per)]
            ),
            "layout": self.layout.name,
            "missing_parameters": list(
                self.missing_parameters if self.done else self.parameter_set.missing_required()
            ),
            "write_latency": LatencyHistogram.sum_of(s.get("write_latency", {}) for s in per),
            "n_writers": len(self.shards),
            "writers": [self._shard_summary(s) for s in self.shards],
        }

    def preview(self) -> Preview | None:
        """The newest of the writers' previews (asked now); once the run is over, the last
        frame of the master, read from its part."""
        for shard in self.shards:
            got = _preview_of(self._http, shard.url) if shard.alive else None
            if got is not None and (self._preview is None or got.frame_id > self._preview.frame_id):
                self._preview = got
        if self.done:
            self._preview = self._last_preview(self._preview)
        if self._preview is None:
            return None
        shown, first = self._preview, self.ledger.first_frame_id  # a writer's index is its own
        index = shown.frame_id - first if first >= 0 else -1
        return Preview(shown.png, shown.frame_id, index, shown.shape)

    def _last_preview(self, shown: Preview | None) -> Preview | None:
        """The preview of the master's last frame, unless ``shown`` is of it already."""
        last = self.builder.last
        if last is None or (shown is not None and shown.frame_id >= last.header.frame):
            return shown
        k, row = last.data
        try:
            pixels = read_row(self.parts[k], row)
        except (OSError, KeyError, ValueError) as exc:  # a part removed or broken since
            log.warning("no preview of frame %d from %s: %s", last.header.frame, self.parts[k], exc)
            return shown
        return Preview(preview_png(pixels), last.header.frame, -1, tuple(pixels.shape))

    # -- the writers -------------------------------------------------------------------------

    def _spawn(self, k: int) -> _Shard:
        values = self.settings.model_dump()
        values.update(
            output=str(self.parts[k]), n_frames=0, max_frames_per_file=0, n_writers=1,
            shard=Shard(index=k, count=self.settings.n_writers).model_dump(),
        )  # fmt: skip
        if self.settings.live_stream:  # one PUB socket: the first writer's, ~every N-th frame
            n = self.settings.n_writers
            values.update(
                live_stream=self.settings.live_stream if k == 0 else "",
                live_stream_every=max(1, round(self.settings.live_stream_every / n)),
            )
        return _Shard(k, AcquisitionSettings.model_validate(values), _free_port(), self._python)

    def _await_shards(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        waiting = list(self.shards)
        while waiting:
            for shard in list(waiting):
                if not shard.alive:
                    raise OutputError(
                        f"writer {shard.index} of {len(self.shards)} could not start: "
                        f"{shard.died() or 'it exited'}"
                    )
                if shard.ask(self._http, "status") is not None:
                    waiting.remove(shard)
            if waiting and time.monotonic() > deadline:
                raise OutputError(
                    f"writer(s) {[s.index for s in waiting]} did not answer within "
                    f"{_START_TIMEOUT_S:g} s"
                )
            time.sleep(0.05)

    def _tell_shards(self, route: str, fallback: int) -> None:
        for shard in self.shards:
            if shard.alive and shard.ask(self._http, route) is None:
                shard.signal(fallback)

    def _end_shards(self) -> None:
        for shard in self.shards:
            shard.signal(signal.SIGTERM)
        for shard in self.shards:
            try:
                shard.process.wait(10)
            except subprocess.TimeoutExpired:
                shard.signal(signal.SIGKILL)
                shard.process.wait(5)

    def _shard_summary(self, shard: _Shard) -> dict[str, Any]:
        s = shard.statistics
        keys = ("status", "n_received_frames", "n_written_frames", "n_dropped_frames",
                "n_invalid_frames", "receiving_rate", "peak_rss_bytes", "end_reason",
                "error")  # fmt: skip
        summary = {k: s[k] for k in keys if k in s}
        if died := shard.died():  # its last statistics were of a writer still running
            summary.update(status="error", end_reason=f"error: {died}", error=died)
        part = str(self.parts[shard.index])
        return {"index": shard.index, "pid": shard.pid, "port": shard.port, "part": part,
                **summary}  # fmt: skip

    # -- the master --------------------------------------------------------------------------

    def _work(self) -> None:
        """Read the parts until every writer has ended; stop them once the run is complete."""
        next_stats = 0.0
        while any(s.alive for s in self.shards):
            self.builder.read()
            if self.ledger.complete and not self._stopping.is_set():
                log.info("every requested frame is in: stopping the writers")
                self.stop()
            dead = [s for s in self.shards if s.died()]
            if dead and not self.error:
                shard = dead[0]
                self._fail(
                    f"writer {shard.index} of {len(self.shards)} (pid {shard.pid}) "
                    f"{shard.died()}; the frames the writers flushed are kept"
                )
            if time.monotonic() >= next_stats:
                self._poll_statistics()
                next_stats = time.monotonic() + _STATS_S
            if self._stopping.is_set() and self._status is WriterStatus.RECEIVING:
                self._status = WriterStatus.WRITING
            self.sink.flush_if_due()
            time.sleep(_ROUND_S)

    def _poll_statistics(self) -> None:
        for shard in self.shards:
            if shard.alive:
                answer = shard.ask(self._http, "statistics")
                if answer is not None:
                    shard.statistics = answer
                    part, idle = self.frames.parts[shard.index], not answer["buffer_used_bytes"]
                    part.drained = int(answer["n_written_frames"]) if idle else None

    def _fail(self, message: str) -> None:
        log.error("acquisition failed: %s", message)
        self.error = self.error or message
        self._stopping.set()
        self._tell_shards("stop", signal.SIGTERM)

    def _finish(self) -> None:
        self._end_shards()
        if not self.error and (died := [s for s in self.shards if s.died()]):
            shard = died[0]
            self.error = (
                f"writer {shard.index} of {len(self.shards)} (pid {shard.pid}) {shard.died()}"
            )
        self._repair_dead_parts()
        try:
            self.builder.read(final=True)
        except Exception as exc:  # noqa: BLE001 - the master must still be closed
            log.exception("reading the parts at the end failed")
            self.error = self.error or str(exc)
        if not self.error and not self.ledger.n_written:
            self.error = (
                f"no frame written: none of the {len(self.shards)} writers got a frame from "
                f"{self.settings.connect}; check that the camera sends there"
            )
        self._http.close()
        self._end(self._end_reason())

    def _repair_dead_parts(self) -> None:
        """A writer that died left its part marked open for writing: make it readable (its
        rows flushed before are all there, ADR 0060)."""
        for shard in self.shards:
            part = self.parts[shard.index]
            if shard.died().startswith("died") and part.exists():
                try:
                    if clear_open_flags(part) is not None:
                        log.warning("repaired part %s of writer %d", part, shard.index)
                except OSError as exc:  # the master still maps what it can read
                    log.error("could not repair part %s: %s", part, exc)

    def _end_reason(self) -> str:
        if common := self._common_end_reason():
            return common
        reasons = {str(s.statistics.get("end_reason", "")) for s in self.shards}
        idle = [r for r in reasons if "idle timeout" in r]
        return idle[0] if idle and len(reasons) == 1 else "stopped"

    def _check_place(self, part: Path) -> None:
        root = self.sink.data_root
        if root is not None and not part.resolve().is_relative_to(root.resolve()):
            raise OutputError(f"part file {part} would lie outside the data root {root}")


def _free_port() -> int:
    with bind_socket("127.0.0.1", 0) as sock:
        return int(sock.getsockname()[1])
