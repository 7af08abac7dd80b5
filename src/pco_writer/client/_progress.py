"""The progress bar of ``wait()``: frames written, rate, ETA, and a camera that sends nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from pco_writer.settings import NO_FRAME_NOTICE_S

__all__ = ["Progress"]

log = logging.getLogger("pco_writer.client")


class Progress:
    """A tqdm bar fed with the writer's statistics; silent when ``enabled`` is False.

    While the writer receives and no frame has come for :data:`NO_FRAME_NOTICE_S` seconds
    (from the start, or since the last one), it says so: in the bar, or without a bar in the
    log (then again each time the wait has doubled). A wrong camera address then shows at
    once instead of as a hang.

    Args:
        enabled: draw the bar.
        total: frames asked for (0: until stopped).
        desc: the bar's label.
        address: the camera address the writer listens to, for the notice.
        clock: seconds, monotonic (a fake one in tests).
    """

    def __init__(
        self,
        enabled: bool,
        total: int,
        desc: str = "writing",
        address: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bar = tqdm(
            total=total or None,
            unit="frame",
            desc=desc,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )
        self._noted = False
        self._address = address
        self._clock = clock
        self._received, self._since = 0, clock()
        self._next_log = NO_FRAME_NOTICE_S
        self.notice = ""
        """The latest "no frame from ... for N s", '' while frames come."""

    def update(self, stats: dict[str, Any] | None) -> None:
        """Show the latest statistics (None: nothing new)."""
        if stats is None:
            return
        written = int(stats.get("n_written_frames", 0))
        if written > self._bar.n:
            self._bar.update(written - self._bar.n)
        self._note_idle(stats)
        postfix = {"status": stats.get("status", "?"),
                   "received": int(stats.get("n_received_frames", 0)),
                   "lost": int(stats.get("n_lost_frames", 0))}  # fmt: skip
        if stats.get("n_dropped_frames"):  # lost counts them too; say how many came
            postfix["dropped"] = int(stats["n_dropped_frames"])
        if self.notice:
            postfix["note"] = self.notice
        self._bar.set_postfix(postfix)  # drawn now: with no frame coming, nothing else draws

    def _note_idle(self, stats: dict[str, Any]) -> None:
        received, now = int(stats.get("n_received_frames", 0)), self._clock()
        if received != self._received:
            self._received, self._since, self._next_log = received, now, NO_FRAME_NOTICE_S
        idle = now - self._since if received else float(stats.get("duration_sec", 0.0))
        if stats.get("status") != "receiving" or idle < NO_FRAME_NOTICE_S:
            self.notice = ""
            return
        self.notice = f"no frame from {self._address} for {idle:.0f} s"
        if self._bar.disable and idle >= self._next_log:
            log.warning("%s; is the camera sending to this address?", self.notice)
            self._next_log *= 2

    def note_waiting(self, missing: list[str], writer_url: str) -> None:
        """Say once that the writer waits for layout parameters, and how to give them."""
        if self._noted or self._bar.disable:
            return
        self._noted = True
        names = ", ".join(missing) or "some"
        self._bar.write(
            f"the writer waits for the parameter(s) {names}: set them with "
            f"set_parameters(...) (POST {writer_url}/parameters), or stop() to write without"
        )

    def close(self) -> None:
        """End the bar."""
        self._bar.close()
