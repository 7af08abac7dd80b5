"""Sets of frame indices kept as sorted runs ``[start, stop)``. Pure, no I/O.

Frames arrive almost in order, so the indices an acquisition received or wrote are a few long
runs: memory and work follow the number of gaps, not the extent of the ids. A bitmap by index
grew with the largest id (a chain of large gaps made it hundreds of megabytes).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator

__all__ = ["RunSet"]


class RunSet:
    """A set of non-negative integers, stored as sorted, disjoint, non-adjacent runs.

    Adding the next index after the last run (the usual case) costs O(1).
    """

    __slots__ = ("_starts", "_stops", "_count")

    def __init__(self, indices: Iterable[int] = ()) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []
        self._count = 0
        for i in indices:
            self.add(i)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int):
            return False
        k = bisect_right(self._starts, index) - 1
        return k >= 0 and index < self._stops[k]

    def __iter__(self) -> Iterator[int]:
        for start, stop in zip(self._starts, self._stops, strict=True):
            yield from range(start, stop)

    def __repr__(self) -> str:
        return f"RunSet({self.runs()})"

    @property
    def stop(self) -> int:
        """One past the largest member, 0 when empty."""
        return self._stops[-1] if self._stops else 0

    @property
    def n_runs(self) -> int:
        """How many runs the set is made of."""
        return len(self._starts)

    def add(self, index: int) -> bool:
        """Add one index; False when it was there already."""
        stops = self._stops
        if stops and index == stops[-1]:  # the next one: the common case
            stops[-1] += 1
            self._count += 1
            return True
        if not stops or index > stops[-1]:
            self._starts.append(index)
            stops.append(index + 1)
            self._count += 1
            return True
        return self.add_run(index, index + 1) == 1

    def add_run(self, start: int, stop: int) -> int:
        """Add ``start .. stop - 1``; returns how many of them were new."""
        if stop <= start:
            return 0
        starts, stops = self._starts, self._stops
        lo = bisect_right(stops, start - 1)  # first run that ends at or after start (adjacent)
        hi = bisect_right(starts, stop)  # runs from here on start after stop (not adjacent)
        if lo == hi:
            starts.insert(lo, start)
            stops.insert(lo, stop)
            self._count += stop - start
            return stop - start
        new_start, new_stop = min(start, starts[lo]), max(stop, stops[hi - 1])
        old = sum(b - a for a, b in zip(starts[lo:hi], stops[lo:hi], strict=True))
        starts[lo:hi] = [new_start]
        stops[lo:hi] = [new_stop]
        added = (new_stop - new_start) - old
        self._count += added
        return added

    def runs(self, lo: int = 0, hi: int | None = None) -> list[tuple[int, int]]:
        """The runs clipped to ``lo .. hi - 1``, in order."""
        starts, stops = self._starts, self._stops
        k = max(0, bisect_right(stops, lo))
        out = []
        while k < len(starts) and (hi is None or starts[k] < hi):
            a, b = max(starts[k], lo), stops[k] if hi is None else min(stops[k], hi)
            if a < b:
                out.append((a, b))
            k += 1
        return out

    def gaps(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The runs of ``lo .. hi - 1`` that are not in the set, in order."""
        out, at = [], lo
        for a, b in self.runs(lo, hi):
            if a > at:
                out.append((at, a))
            at = b
        if at < hi:
            out.append((at, hi))
        return out

    def count(self, lo: int, hi: int) -> int:
        """How many members lie in ``lo .. hi - 1``."""
        if hi <= lo:
            return 0
        if lo <= 0 and hi >= self.stop:
            return self._count
        return sum(b - a for a, b in self.runs(lo, hi))
