"""The frame ledger of one acquisition: what happened to every frame. Pure, no I/O.

The writer thread owns it: it places each valid message the receiver hands over (accepted at
an index of the acquisition, or rejected with a reason), and the sink records each accepted
frame as written to a file or dropped with a reason. Statistics, ``missing_frame_ids`` and the
REST API read it through :meth:`FrameLedger.snapshot` and :meth:`FrameLedger.missing`;
nothing else keeps a count of frames. The fates of one frame::

    message --receiver--> rejected at the door (not a valid Array-1.0 message; receiver's count)
            --ledger----> rejected (not of this acquisition: shape, duplicate, beyond n_frames...)
                          placed at index i --sink--> written to file k | dropped (killed, ...)

**Where the acquisition starts** (docs/decisions/0041-frame-ledger.md). No single message
decides it. The first frames are held until a short window is full (``window_frames``
frames; or ``window_s`` seconds once two frames of one kind, at most ``CLOSE`` ids apart,
show that a stream flows; or the end of the stream); the kind (shape, type, byte order) most
of them share, then the largest group of their ids that lie within ``max_frame_gap`` of each
other, win; the first frame id is the smallest id of that group. A stray first frame, however
long before the stream, or one overtaken by the next, costs nothing. One of several writers
does not know where the acquisition starts (the acquisition decides that over all writers):
it places frames by id, and decides only their kind, after ``LONE_S`` on a lone frame.

**When it is complete** (``n_frames > 0``): once every requested index is in; or once the
stream has passed the end of the range and no missing frame of the range has come for
``settle_s`` seconds. Passed the end: at least half of the last ``TAIL`` requested frames are
in, and the last requested frame or a frame beyond the range came (a camera that pauses, or
sends a frame every second, has not passed the end; docs/decisions/0073-a-pause-is-not-the-end.md).
Frames beyond the range pass the end only as a stream does, two with consecutive ids: a stray
frame beyond the range ends nothing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pco_writer.buffer import ReceivedFrame
from pco_writer.protocol import FrameHeader
from pco_writer.runs import RunSet
from pco_writer.settings import DEFAULT_MAX_FRAME_GAP

__all__ = ["FrameLedger", "LedgerSnapshot", "Placement", "choose_start", "flowing"]

WINDOW_FRAMES = 32
WINDOW_S = 0.25
SETTLE_S = 0.25
TAIL = 32
CLOSE = 64  # two frames this close in id are a stream (above the most writers' stride)
LONE_S = 2.0  # one of several writers decides a lone frame's kind after this long

Kind = tuple[tuple[int, ...], str, str]


def by_id(frame: ReceivedFrame) -> int:
    """Sort key: the frame id."""
    return frame.header.frame


def kind_of(header: FrameHeader) -> Kind:
    """What frames of one acquisition share: shape, pixel type, byte order."""
    return header.shape, header.type, header.endianness


@dataclass
class Placement:
    """What :meth:`FrameLedger.place` made of a batch."""

    accepted: list[ReceivedFrame] = field(default_factory=list)
    """The frames of the acquisition, their ``index`` set, in the order they came."""
    rejected: list[tuple[FrameHeader, str, int]] = field(default_factory=list)
    """The headers of the others, each with its reason and that reason's count so far."""


@dataclass(frozen=True)
class LedgerSnapshot:
    """The ledger at one moment, for statistics and the REST API (JSON-ready numbers).

    Attributes:
        first_frame_id: the id at index 0, -1 while it is not decided.
        n_frames: frames requested, 0 for until stopped.
        n_placed: frames accepted into the acquisition (each index once).
        n_written: frames whose chunk is in a file.
        covered: the acquisition so far is indices ``0 .. covered - 1``: the requested range
            once complete, else up to the highest index placed.
        n_never_received: indices in the covered range that no frame came for.
        dropped_by_reason: frames placed but not written, by reason.
        rejected_by_reason: valid messages that are no frame of this acquisition, by reason.
        complete: the requested frames are in (or the stream has moved past them).
    """

    first_frame_id: int
    n_frames: int
    n_placed: int
    n_written: int
    covered: int
    n_never_received: int
    dropped_by_reason: Mapping[str, int]
    rejected_by_reason: Mapping[str, int]
    complete: bool

    @property
    def n_dropped(self) -> int:
        """Frames received and accepted but not written (killed, late, a failed write)."""
        return sum(self.dropped_by_reason.values())

    @property
    def n_rejected(self) -> int:
        """Valid messages that were no frame of this acquisition."""
        return sum(self.rejected_by_reason.values())

    @property
    def n_lost(self) -> int:
        """Frames of the covered range that are not in a file, whatever the cause."""
        return self.n_never_received + self.n_dropped

    @property
    def lost_by_reason(self) -> dict[str, int]:
        """:attr:`n_lost` by cause: ``never_received`` and the drop reasons."""
        out = {"never_received": self.n_never_received} if self.n_never_received else {}
        return out | dict(self.dropped_by_reason)


@dataclass
class FrameLedger:
    """Places frames in one acquisition and records what became of them.

    Args:
        n_frames: frames requested; 0 means until stopped.
        max_frame_gap: a frame more than this beyond the highest index so far is rejected as
            implausible (so the extent grows by at most this much per frame).
        window_frames, window_s: how many first frames, or how long, to look at before the
            start of the acquisition is decided.
        settle_s: how long to wait for a missing frame once the stream reached the end.
        sees_all: False for one of several writers of an acquisition: it gets only the frames
            ZeroMQ deals it, so the ids between them are not lost (the acquisition counts
            those), and it writes its frames in the order they come (index = row).
        clock: seconds, monotonic (a fake one in tests).
    """

    n_frames: int = 0
    max_frame_gap: int = DEFAULT_MAX_FRAME_GAP
    window_frames: int = WINDOW_FRAMES
    window_s: float = WINDOW_S
    settle_s: float = SETTLE_S
    sees_all: bool = True
    clock: Callable[[], float] = time.monotonic
    _kind: Kind | None = field(default=None, init=False)
    _first_id: int = field(default=-1, init=False)
    _placed: RunSet = field(default_factory=RunSet, init=False)
    _written: RunSet = field(default_factory=RunSet, init=False)
    _dropped: Counter[str] = field(default_factory=Counter, init=False)
    _rejected: Counter[str] = field(default_factory=Counter, init=False)
    _last_fill: float = field(default=0.0, init=False)
    _passed_end: bool = field(default=False, init=False)  # the stream reached the end
    _beyond: tuple[int, int] = field(default=(-1, 0), init=False)  # last id, ids in a row
    _complete: bool = field(default=False, init=False)
    _seen: RunSet = field(default_factory=RunSet, init=False)  # indices read (placed or not)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- the start -------------------------------------------------------------------------

    @property
    def decided(self) -> bool:
        """True once the first frame id and the frames' kind are fixed."""
        return self._kind is not None

    @property
    def first_frame_id(self) -> int:
        """The id at index 0, -1 while not decided."""
        return self._first_id

    def window_full(self, held: Sequence[ReceivedFrame], held_since: float) -> bool:
        """True when the frames ``held`` since ``held_since`` are enough to decide."""
        if len(held) >= self.window_frames:
            return True
        waited = self.clock() - held_since
        if waited < self.window_s:
            return False
        # one frame is enough: the one requested, or one of several writers' after a while
        lone = waited >= LONE_S if not self.sees_all else self.n_frames == 1
        return lone or flowing([f.header for f in held])

    def decide(self, frames: Sequence[ReceivedFrame]) -> None:
        """Fix the kind and first frame id from the first frames (in arrival order).

        Place those frames sorted by id (``sorted(frames, key=by_id)``): a group of ids that
        came out of order is then accepted whole.
        """
        if self.decided or not frames:
            return
        kind, first = choose_start([f.header for f in frames], self.max_frame_gap)
        with self._lock:
            self._kind, self._first_id = kind, first

    # -- placing ---------------------------------------------------------------------------

    def place(self, frames: Sequence[ReceivedFrame]) -> Placement:
        """Give each frame its index (``frame.index``). Needs :meth:`decide`.

        Returns:
            The frames accepted, in order, and the headers of those that are no frame of
            this acquisition, with the reason (counted here) and its count so far.
        """
        if not frames:
            return Placement()
        assert self._kind is not None, "decide() first"
        kind, first, n, gap = self._kind, self._first_id, self.n_frames, self.max_frame_gap
        if not self.sees_all:  # by id: the acquisition checks where a frame belongs
            first, n, gap = 0, 0, 1 << 64
        placed, out, counts = self._placed, Placement(), self._rejected
        accepted, rejected = out.accepted, out.rejected
        with self._lock:
            for f in frames:
                h = f.header
                if (h.shape, h.type, h.endianness) != kind:
                    reason = "shape_changed" if h.shape != kind[0] else "type_changed"
                else:
                    index = h.frame - first
                    if index < 0:
                        reason = "frame_before_first"
                    elif index > placed.stop - 1 + gap:  # garbage must not stretch the run
                        reason = "implausible_frame_id"
                    elif n and index >= n:
                        reason = "beyond_n_frames"
                        self._passing(h.frame)
                    elif not placed.add(index):
                        reason = "duplicate_frame_id"
                    else:
                        f.index = index
                        accepted.append(f)
                        continue
                counts[reason] += 1
                rejected.append((h, reason, counts[reason]))
            if accepted:
                self._last_fill = self.clock()
        return out

    def explain(self, header: FrameHeader, reason: str) -> str:
        """A sentence for the log: why a frame was rejected for ``reason``."""
        shape, dtype, order = self._kind or ((), "?", "?")
        first, frame = self._first_id, header.frame
        sentences = {
            "shape_changed": f"frame {frame} has shape {list(header.shape)}, but this "
            f"acquisition's frames are {list(shape)}",
            "type_changed": f"frame {frame} is {header.type}/{header.endianness}, but this "
            f"acquisition's frames are {dtype}/{order}",
            "frame_before_first": f"frame {frame} comes before the acquisition's first frame "
            f"{first}",
            "implausible_frame_id": f"frame {frame} is more than {self.max_frame_gap} beyond "
            f"the highest frame id so far ({first + self._placed.stop - 1})",
            "beyond_n_frames": f"frame {frame} (index {frame - first}) is beyond the "
            f"{self.n_frames} frames requested",
            "duplicate_frame_id": f"frame {frame} was already received; kept the first",
        }
        return sentences.get(reason, f"frame {frame}: {reason}")

    # -- fates -----------------------------------------------------------------------------

    def record_written(self, indices: Iterable[int]) -> None:
        """Frames whose chunks are now in a file."""
        with self._lock:
            for i in indices:
                self._written.add(i)

    def record_dropped(self, n: int, reason: str) -> None:
        """``n`` frames that were placed (or taken for placing) but will not be written."""
        if n:
            with self._lock:
                self._dropped[reason] += n

    # -- the acquisition -------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True when the requested frames are in, or the stream has passed their end; once
        True, it stays so (frames placed late, at the end of the run, change nothing)."""
        if not self._complete:
            self._complete = self._is_complete()
        return self._complete

    def _is_complete(self) -> bool:
        n = self.n_frames
        if not n or not self.decided:
            return False
        if len(self._placed) >= n or len(self._seen) >= n:
            return True
        tail = min(n, TAIL)
        most_of_the_tail = 2 * self._placed.count(n - tail, n) >= tail
        at_the_end = self._placed.stop >= n or self._passed_end
        settled = self.clock() - self._last_fill >= self.settle_s
        return most_of_the_tail and at_the_end and settled

    def saw(self, header: FrameHeader) -> None:
        """A frame was read, placed now or later (the master of several writers, told of
        every frame it reads, holds them until every part has passed them): once every
        requested id was seen, the run is complete; the last requested id, or frames beyond
        as a stream sends them, count as the stream reaching the end of the range."""
        if not (self.decided and self.n_frames) or kind_of(header) != self._kind:
            return
        index = header.frame - self._first_id
        if 0 <= index < self.n_frames:
            self._seen.add(index)
        if index == self.n_frames - 1:
            self._passed_end = True
        elif index >= self.n_frames:
            self._passing(header.frame)

    def _passing(self, frame_id: int) -> None:
        """Count ``frame_id``, beyond the range, into the run of consecutive ids beyond it."""
        last, in_a_row = self._beyond
        if frame_id != last:
            self._beyond = (frame_id, in_a_row + 1 if frame_id == last + 1 else 1)
            self._passed_end = self._passed_end or self._beyond[1] >= 2

    @property
    def covered(self) -> int:
        """Indices ``0 .. covered - 1`` make the acquisition so far (for a writer that does
        not see all frames: its rows)."""
        if not self.sees_all:
            return len(self._written)
        return self.n_frames if self.complete else self._placed.stop

    @property
    def n_written(self) -> int:
        """Frames in a file so far."""
        return len(self._written)

    @property
    def n_written_runs(self) -> int:
        """How many runs of consecutive indices the written frames make."""
        return self._written.n_runs

    def written_runs(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The runs of indices in ``lo .. hi - 1`` that are in a file."""
        with self._lock:
            return self._written.runs(lo, hi)

    def missing(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The runs of indices in ``lo .. hi - 1`` that are not in a file."""
        with self._lock:
            return self._written.gaps(lo, hi)

    def snapshot(self) -> LedgerSnapshot:
        """A consistent copy of the counts (safe from any thread)."""
        with self._lock:
            covered = self.covered
            return LedgerSnapshot(
                first_frame_id=self._first_id,
                n_frames=self.n_frames,
                n_placed=len(self._placed),
                n_written=len(self._written),
                covered=covered,
                n_never_received=covered - self._placed.count(0, covered) if self.sees_all else 0,
                dropped_by_reason=dict(self._dropped),
                rejected_by_reason=dict(self._rejected),
                complete=self.complete,
            )


def _most_shared(headers: Sequence[FrameHeader]) -> tuple[set[Kind], int]:
    """The kinds most of ``headers`` share (several on a tie), and how many have each."""
    kinds: Counter[Kind] = Counter(kind_of(h) for h in headers)
    top = max(kinds.values(), default=0)
    return {k for k, n in kinds.items() if n == top}, top


def flowing(headers: Sequence[FrameHeader]) -> bool:
    """True when two of ``headers``, of the kind most of them share, are at most ``CLOSE``
    ids apart: a stream flows (one frame, or frames far apart, may be strays)."""
    kinds, top = _most_shared(headers)
    for kind in kinds if top >= 2 else ():
        ids = sorted(h.frame for h in headers if kind_of(h) == kind)
        if any(0 < b - a <= CLOSE for a, b in zip(ids, ids[1:], strict=False)):
            return True
    return False


def choose_start(headers: Sequence[FrameHeader], max_gap: int) -> tuple[Kind, int]:
    """The kind and first frame id of an acquisition from its first frames' headers.

    The kind most of them share wins (a tie: the kind of the latest frame). The ids of that
    kind, sorted, fall into groups wherever two neighbours are ``max_gap`` or more apart (as
    :meth:`FrameLedger.place` would reject the second); the largest group wins (a tie: the
    group holding the latest frame), and its smallest id is the first frame id.
    """
    kinds, _ = _most_shared(headers)
    kind = next(kind_of(h) for h in reversed(headers) if kind_of(h) in kinds)
    ids = sorted((h.frame, order) for order, h in enumerate(headers) if kind_of(h) == kind)
    groups: list[list[tuple[int, int]]] = [[ids[0]]]
    for previous, this in zip(ids, ids[1:], strict=False):
        if this[0] - previous[0] >= max_gap:
            groups.append([])
        groups[-1].append(this)
    best = max(groups, key=lambda g: (len(g), max(order for _, order in g)))
    return kind, best[0][0]
