"""The master file of an acquisition written by several writers (ADR 0042).

The acquisition process reads the rows each writer has flushed to its part file, places them
in the acquisition's frame ledger (start, duplicates across writers, gaps, ``n_frames``), and
hands them to an :class:`H5Sink` whose layout writes master files: the layout's tree and
per-frame values from the frames' headers, and the frames dataset as a virtual dataset over
the part rows (:class:`VirtualFrames`). Each flush publishes the master (copy and
``os.replace``); the close leaves the exact master.
"""

from __future__ import annotations

import json
import logging
import time
from bisect import bisect_right

import h5py

from pco_writer.buffer import ReceivedFrame
from pco_writer.errors import ProtocolError
from pco_writer.h5._part import PART_HEADERS, PART_IDS
from pco_writer.h5._sink import H5Sink
from pco_writer.h5._virtual import VirtualFrames, _Part
from pco_writer.ledger import FrameLedger, by_id
from pco_writer.protocol import FrameHeader, parse_header

__all__ = ["MasterBuilder"]

log = logging.getLogger(__name__)

QUIET_AFTER_S = 3.0
"""Seconds without a new row (at least two flush intervals and one more second) after which
a part whose writer has an empty buffer and every frame it wrote flushed stops holding the
master back: it got none yet, or the stream went to the others, or ended."""


class MasterBuilder:
    """Reads the parts, places their frames, writes the master files.

    Args:
        sink: writes the master files (its layout built with ``virtual=frames``).
        frames: the map of frames onto part rows.
        ledger: the acquisition's frame ledger (the sink records in it too).
        flush_interval: how often the writers flush their parts, seconds.
    """

    def __init__(
        self, sink: H5Sink, frames: VirtualFrames, ledger: FrameLedger, flush_interval: float = 1.0
    ) -> None:
        self.sink = sink
        self.frames = frames
        self.ledger = ledger
        self.quiet_s = max(QUIET_AFTER_S, 2 * flush_interval + 1)
        self._held: list[ReceivedFrame] = []  # until the start is decided
        self._held_since = 0.0
        self._waiting: list[ReceivedFrame] = []  # read, not yet below every part's progress
        self._first_read = 0.0
        self.last: ReceivedFrame | None = None
        """The frame with the highest id in the master so far (``data``: part, row)."""

    def read(self, final: bool = False) -> int:
        """Take in the rows the parts have flushed since the last call; how many there were.

        Frames go to the master in id order, and only up to the lowest of the parts' highest
        ids read so far: a part that flushed later may still hold a lower id, and the master
        files roll over by id as one writer's files do. With ``final`` (every writer has
        ended), everything read goes in, and the start is decided from whatever was held.
        """
        fresh: list[ReceivedFrame] = []
        for k, part in enumerate(self.frames.parts):
            fresh.extend(self._read_part(k, part))
        if fresh and not self._first_read:
            self._first_read = time.monotonic()
        if not self.ledger.decided:
            if fresh and not self._held:
                self._held_since = time.monotonic()
            self._held.extend(fresh)
            if not self._held or not (final or self._start_seen()):
                return len(fresh)
            self.ledger.decide(self._held)
            self.frames.first_frame_id = self.ledger.first_frame_id
            fresh, self._held = self._held, []
        fresh.sort(key=by_id)
        for f in fresh:  # the end of the stream may be read before it can be placed
            self.ledger.saw(f.header)
        self._waiting.extend(fresh)
        self._waiting.sort(key=by_id)  # two sorted runs: a merge
        ready = len(self._waiting) if final else self._up_to(self._watermark())
        if ready:
            self._place(self._waiting[:ready])
            del self._waiting[:ready]
        return len(fresh)

    def _start_seen(self) -> bool:
        """True when the first frames of every part are read, and enough to decide the start.

        The writers flush on their own clocks: a part read alone would decide the start
        without the lower ids another part is about to show.
        """
        return self._watermark() >= 0 and self.ledger.window_full(self._held, self._held_since)

    def _watermark(self) -> int:
        """Every part has been read up to at least this id (-1: one has nothing yet).

        A part that is quiet holds nothing back: no new row for :attr:`quiet_s` (since the
        first frame read, or its own last row), and its writer, when last asked, had an
        empty buffer and had written no row that is not read (it got no frame, or ZeroMQ
        dealt the rest of the stream to the others). A writer that lags, or flushes rarely,
        is not quiet. When all are quiet, everything read can go in.
        """
        parts = self.frames.parts
        if not self._first_read:
            return -1
        now = time.monotonic()
        busy = [p.top_id for p in parts if not self._quiet(p, now)]
        return min(busy) if busy else max(p.top_id for p in parts)

    def _quiet(self, part: _Part, now: float) -> bool:
        drained = part.drained is not None and part.drained <= part.rows_read
        return drained and now - max(part.grew_at, self._first_read) > self.quiet_s

    def _up_to(self, top: int) -> int:
        """How many of the waiting frames have an id of at most ``top``."""
        return bisect_right([f.header.frame for f in self._waiting], top)

    def _place(self, frames: list[ReceivedFrame]) -> None:
        placement = self.ledger.place(frames)
        for header, reason, n in placement.rejected:
            if n <= 10 or n % 1000 == 0:
                log.warning(
                    "frame of a part not in the master (%s, %d so far): %s", reason, n,
                    self.ledger.explain(header, reason),
                )  # fmt: skip
        for f in placement.accepted:
            k, row = f.data
            self.frames.parts[k].rows.append(f.header.frame, row)
            if self.last is None or f.header.frame > self.last.header.frame:
                self.last = f
        if placement.accepted:
            self.sink.write(placement.accepted)

    def _read_part(self, k: int, part: _Part) -> list[ReceivedFrame]:
        if not part.path.exists():
            return []  # its writer has not had a frame yet
        try:
            with h5py.File(part.path, "r", swmr=True) as f:
                n = min(len(f[PART_IDS]), len(f[PART_HEADERS]))
                if n <= part.rows_read:
                    return []
                ids = f[PART_IDS][part.rows_read : n]
                texts = f[PART_HEADERS][part.rows_read : n]
        except (OSError, KeyError) as exc:  # being created: its datasets come with the first flush
            log.debug("part %s not readable yet: %s", part.path, exc)
            return []
        out = []
        for i, (frame_id, text) in enumerate(zip(ids.tolist(), texts.tolist(), strict=True)):
            if text:  # a header in full; the rows after it repeat it but for the id
                part.header = _header(text.decode() if isinstance(text, bytes) else text)
            if part.header is not None:
                header = part.header.with_frame(frame_id)
                out.append(ReceivedFrame(-1, header, (k, part.rows_read + i), 0))
        part.rows_read = n
        part.top_id = int(ids[-1])  # its progress: a stray high id early on is passed over
        part.grew_at = time.monotonic()
        return out


def _header(text: str) -> FrameHeader | None:
    """A header stored in a part (JSON without its frame id), with frame id 0."""
    try:
        return parse_header(json.dumps({**json.loads(text), "frame": 0}))
    except (ValueError, TypeError, ProtocolError) as exc:
        log.error("a part row's header cannot be read (%s): its rows are left out", exc)
        return None
