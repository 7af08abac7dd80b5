"""The progress bar of ``wait()``: frames written, rate, ETA."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """A tqdm bar fed with the writer's statistics; silent when ``enabled`` is False."""

    def __init__(self, enabled: bool, total: int, desc: str = "writing") -> None:
        self._bar = tqdm(
            total=total or None,
            unit="frame",
            desc=desc,
            disable=not enabled,
            dynamic_ncols=True,
            leave=True,
        )
        self._noted = False

    def update(self, stats: dict[str, Any] | None) -> None:
        """Show the latest statistics (None: nothing new)."""
        if stats is None:
            return
        written = int(stats.get("n_written_frames", 0))
        if written > self._bar.n:
            self._bar.update(written - self._bar.n)
        self._bar.set_postfix(
            status=stats.get("status", "?"),
            received=int(stats.get("n_received_frames", 0)),
            lost=int(stats.get("n_lost_frames", 0)),
            refresh=False,
        )

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
