"""The writer thread's one look outward: after each written batch, its latency and a frame.

:class:`WriteWatch` is the only thing the write loop calls for monitoring; what it does per
batch is bounded (a clock read, a histogram update, a comparison), and copying a frame for
viewers happens at most every half second, or every N-th frame for a live stream.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pco_writer.buffer import ReceivedFrame
from pco_writer.preview import Preview
from pco_writer.settings import AcquisitionSettings
from pco_writer.statistics import LatencyHistogram
from pco_writer.writer._live import LiveStream
from pco_writer.writer._tap import FrameTap

__all__ = ["WriteWatch"]


class WriteWatch:
    """The write latency histogram and the frame tap of one acquisition.

    The write latency of a batch is the time from the receipt of its first (oldest) frame's
    header to the return of the write that put the batch in its file (the page cache, not
    yet the disk): how far the file is behind the camera.
    """

    def __init__(self, settings: AcquisitionSettings) -> None:
        self.latency = LatencyHistogram()
        self.stream = (
            LiveStream(settings.live_stream, settings.live_stream_every)
            if settings.live_stream
            else None
        )
        self.tap = FrameTap(settings.compression, self.stream, last_index=settings.n_frames - 1)

    def start(self) -> None:
        """Bind the live stream, if there is one (a failure is logged, not raised)."""
        if self.stream is not None:
            self.stream.start()

    def written(self, frames: Sequence[ReceivedFrame]) -> None:
        """Writer thread: ``frames`` (placed, in order) are in their file now."""
        if not frames:
            return
        now = time.monotonic()
        if frames[0].t_received:
            self.latency.observe(now - frames[0].t_received)
        self.tap.offer(frames, now)

    def preview(self) -> Preview | None:
        """The latest preview (any thread); None before the first frame was written."""
        return self.tap.preview()

    def close(self) -> None:
        """Stop the live stream (after the last batch)."""
        if self.stream is not None:
            self.stream.close()
