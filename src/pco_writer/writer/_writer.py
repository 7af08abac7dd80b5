"""The writer: one acquisition, receiver thread -> frame buffer -> one HDF5 writer thread.

Lifecycle (``status``)::

    created --start()--> receiving --(n_frames reached | stop() | idle)--> writing
    writing --(buffer drained, file closed)--> finished
    writing --(a required layout parameter missing)--> waiting for parameters
    waiting for parameters --(it arrives | stop() | kill())--> finished
    any --(write failed)--> error          any --kill()--> finished (end_reason "killed")

``finished`` is reported only after the file is closed and the statistics are final.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from pco_writer.buffer import FrameBuffer, ReceivedFrame
from pco_writer.codecs import get_codec
from pco_writer.h5 import H5Sink, OutputFiles
from pco_writer.h5._layout_file import H5Layout
from pco_writer.h5._part import PartLayout
from pco_writer.ledger import FrameLedger, by_id
from pco_writer.preview import Preview
from pco_writer.receiver import Receiver, ReceiverSettings, should_log
from pco_writer.settings import AcquisitionSettings
from pco_writer.statistics import statistics
from pco_writer.writer._acquisition import Acquisition, WriterStatus, peak_rss_bytes
from pco_writer.writer._compressing import CompressingSource, compressor_for, default_workers
from pco_writer.writer._watch import WriteWatch

__all__ = ["Writer", "WriterStatus"]

log = logging.getLogger(__name__)

_BATCH = 64  # frames per HDF5 round: one resize, then direct chunk writes
_GET_WAIT_S = 0.2
# Wait this long for a full batch: each HDF5 round has a fixed cost (a resize is ~0.1 ms),
# and at 10k+ small frames/s a writer woken by every frame spent more time waking than writing.
_LINGER_S = 0.005


class Writer(Acquisition):
    """Receives one acquisition and writes it to HDF5.

    Args:
        settings: what to receive and where to write it.
        on_done: called on the writer thread once the file is closed (status final).
    """

    def __init__(
        self, settings: AcquisitionSettings, on_done: Callable[[Writer], None] | None = None
    ) -> None:
        super().__init__(settings, on_done)
        part = settings.shard is not None  # one of several writers: a part file, rows in order
        self.ledger = FrameLedger(settings.n_frames, settings.max_frame_gap, sees_all=not part)
        self._next_row = 0
        self.buffer = FrameBuffer(settings.buffer_bytes)
        self.files = OutputFiles.from_output(
            settings.output, settings.n_frames, settings.max_frames_per_file
        )
        self.sink = H5Sink(
            self.files, settings.dataset_name, self.ledger,
            layout=PartLayout(settings.compression, _part_attributes(settings)) if part
            else H5Layout(self.layout, self.parameter_set, settings.compression, settings.swmr),
            flush_interval=settings.flush_interval,
            data_root=Path(settings.data_root) if settings.data_root else None,
        )  # fmt: skip
        self.source = self._frame_source(settings)
        receiving = ReceiverSettings(
            settings.connect, idle_timeout=settings.idle_timeout, compression=settings.compression
        )
        self.receiver = Receiver(receiving, self.buffer)
        self._held: list[ReceivedFrame] = []  # the first frames, until the start is decided
        self.watch = WriteWatch(settings)  # write latency and frames for viewers (off the path)
        self._thread = threading.Thread(target=self._run, name="h5-writer")

    def start(self) -> None:
        """Check the output, connect to the camera and start receiving.

        Raises:
            ConfigError: the dataset name is taken or the output cannot be written;
                nothing was written.
        """
        self._check_can_start()
        self.sink.check()
        self.receiver.start()
        self.watch.start()
        self._status = WriterStatus.RECEIVING
        self._thread.start()
        log.info(
            "receiving from %s into %s (%s), n_frames=%d",
            self.settings.connect, self.files.template, self.settings.dataset_name,
            self.settings.n_frames,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop receiving; what is buffered is still written, then the file is closed.

        While waiting for parameters: stop waiting and write the file without them.
        """
        if self._status is WriterStatus.WAITING_FOR_PARAMETERS:
            self._give_up_waiting.set()
        self.receiver.stop()

    def kill(self) -> None:
        """Stop now: drop what is not yet written and close the file cleanly."""
        self._give_up_waiting.set()
        self._killed.set()
        self.receiver.stop()
        self.buffer.close()  # a receiver waiting for room gives up; the rest is dropped

    def statistics(self) -> dict[str, Any]:
        """The statistics so far, with the status (see :func:`pco_writer.statistics.statistics`)."""
        identity = {
            "n_frames": self.settings.n_frames,
            "dataset_name": self.settings.dataset_name,
            "output_file": str(self.files.path(1)),
            "files": list(self.sink.written_paths),
            "user_id": self.settings.user_id,
            "end_reason": self.end_reason,
        }
        snap = statistics(identity, self.receiver.stats, self.ledger.snapshot(), self.timeline)
        snap["status"] = self._status.value
        snap["error"] = self.error
        snap["buffer_used_bytes"] = self.buffer.stats.used_bytes
        snap["buffer_peak_bytes"] = self.buffer.stats.peak_bytes
        snap["peak_rss_bytes"] = peak_rss_bytes()
        snap["layout"] = self.layout.name
        snap["write_latency"] = self.watch.latency.as_dict()
        done = self._done.is_set()
        missing = self.missing_parameters if done else self.parameter_set.missing_required()
        snap["missing_parameters"] = list(missing)
        return snap

    def preview(self) -> Preview | None:
        """The PNG of a recently written frame (made now, on the caller's thread, once per
        frame); None before any frame was written."""
        return self.watch.preview()

    def _frame_source(self, settings: AcquisitionSettings) -> FrameBuffer | CompressingSource:
        """The buffer itself, or with compression a pool of threads that compresses from it."""
        codec = get_codec(settings.compression)
        if codec is None:
            return self.buffer
        workers = settings.compression_threads or default_workers()
        return CompressingSource(self.buffer, compressor_for(codec), workers)

    def _work(self) -> None:
        try:
            self._write_frames(self.source)
        finally:
            if isinstance(self.source, CompressingSource):
                self.ledger.record_dropped(self.source.shutdown(), self._drop_reason())

    def _write_frames(self, source: FrameBuffer | CompressingSource) -> None:
        take: Callable[[], list[ReceivedFrame]]
        if isinstance(source, FrameBuffer):
            take = partial(source.get_batch, _BATCH, _GET_WAIT_S, _LINGER_S)
        else:  # a compression pool wants frames as soon as they come: no linger
            take = partial(source.get_batch, _BATCH, _GET_WAIT_S)
        held_since = 0.0
        while not self._killed.is_set():
            batch = take()
            if not self.ledger.decided:  # the first frames wait until the start is decided
                if batch and not self._held:
                    held_since = time.monotonic()
                self._held.extend(batch)
                full = self.ledger.window_full(self._held, held_since)
                if not self._held or not (full or source.closed):
                    if source.drained:
                        return
                    continue
                self.ledger.decide(self._held)
                batch, self._held = sorted(self._held, key=by_id), []
            if batch:
                try:
                    self._write(batch)
                finally:
                    source.release(batch)
            elif source.drained:
                return
            if self.ledger.complete and not self.receiver.stop_event.is_set():
                self.receiver.stop()  # every requested frame is in: stop receiving
            if self.buffer.closed and self._status is WriterStatus.RECEIVING:
                self._status = WriterStatus.WRITING
            self.sink.flush_if_due()

    def _write(self, batch: list[ReceivedFrame]) -> None:
        """Place a batch in the acquisition and write the frames that belong to it."""
        placement = self.ledger.place(batch)
        for header, reason, n in placement.rejected:
            if should_log(n):
                log.warning(
                    "rejected frame (%s, %d so far): %s", reason, n,
                    self.ledger.explain(header, reason),
                )  # fmt: skip
        if self.settings.shard is not None:  # a part file: rows in the order frames come
            for f in placement.accepted:
                f.index, self._next_row = self._next_row, self._next_row + 1
        if placement.accepted:
            self.sink.write(placement.accepted)
            self.watch.written(placement.accepted)

    def _drop_the_rest(self) -> None:
        """Frames still held or buffered when the run ends early: recorded, never written."""
        reason = self._drop_reason()
        held, self._held = self._held, []
        self.ledger.record_dropped(len(held), reason)
        self.buffer.release(held)
        while batch := self.buffer.get_batch(_BATCH, 0.0):
            self.ledger.record_dropped(len(batch), reason)
            self.buffer.release(batch)

    def _drop_reason(self) -> str:
        return "killed" if self._killed.is_set() and not self.error else "error"

    def _fail(self, message: str) -> None:
        log.error("acquisition failed: %s", message)
        self.error = message
        self.receiver.stop()
        self.buffer.close()

    def _finish(self) -> None:
        self.receiver.join(5.0)
        self.watch.close()
        self._drop_the_rest()  # also a frame the receiver committed after a kill
        if self.receiver.error and not self.error:
            self.error = self.receiver.error
        if not self.error and not self.ledger.n_written and self.settings.shard is None:
            self.error = self._nothing_written()  # (one of several writers may get nothing)
            log.error("%s", self.error)
        self._end(self._end_reason())

    def _nothing_written(self) -> str:
        """Why a run ended without a frame: an error, which says where the writer listened."""
        ending, stats = self._end_reason(), self.statistics()
        address, waited = self.settings.connect, self.timeline.duration_sec
        received, invalid = stats["n_received_frames"], stats["n_invalid_frames"]
        if not received and not invalid:
            return (
                f"no frame written: nothing came from {address} in {waited:.1f} s ({ending}); "
                "is the camera sending to that address? check the connection address"
            )
        why = {**stats["invalid_by_reason"], **stats["lost_by_reason"]}
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(why.items()))
        return (
            f"no frame written: {received} frame(s) and {invalid} bad message(s) came from "
            f"{address} in {waited:.1f} s ({ending}), none written ({reasons or 'none placed'})"
        )

    def _end_reason(self) -> str:
        if common := self._common_end_reason():
            return common
        if self.receiver.end_cause == "idle_timeout":
            return f"stopped: no frame for {self.settings.idle_timeout:g} s (idle timeout)"
        return "stopped"


def _part_attributes(settings: AcquisitionSettings) -> dict[str, Any]:
    """What a part file says of itself: whose part it is."""
    assert settings.shard is not None
    return {
        "part_of_dataset": settings.dataset_name,
        "writer": settings.shard.index,
        "n_writers": settings.shard.count,
    }
