"""Frame bookkeeping of one acquisition: index, duplicates, implausible ids, gaps. Pure, no I/O.

The first valid frame fixes the acquisition's first frame id, shape and type. The frame with
id ``first + i`` belongs at index ``i``. With ``n_frames > 0`` the acquisition covers the
indices ``0 .. n_frames - 1`` and is complete when the last of them has arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pco_writer.errors import ProtocolError
from pco_writer.protocol import FrameHeader

__all__ = ["FrameSequence", "DEFAULT_MAX_FRAME_GAP"]

DEFAULT_MAX_FRAME_GAP = 100_000


@dataclass
class FrameSequence:
    """Accepts or rejects frames by id and keeps what arrived.

    Args:
        n_frames: frames requested; 0 means until stopped.
        max_frame_gap: a frame id more than this beyond the highest seen is rejected.
    """

    n_frames: int = 0
    max_frame_gap: int = DEFAULT_MAX_FRAME_GAP
    first: FrameHeader | None = None
    highest_index: int = -1
    n_accepted: int = 0
    past_end: bool = False
    _seen: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def first_frame_id(self) -> int:
        """The id of the first accepted frame, or -1 before any."""
        return self.first.frame if self.first else -1

    @property
    def complete(self) -> bool:
        """True when ``n_frames > 0`` and the last requested index, or one past it, arrived."""
        return self.n_frames > 0 and (self.highest_index >= self.n_frames - 1 or self.past_end)

    @property
    def last_index(self) -> int:
        """The last index the acquisition covers so far: the highest received, or once a
        frame past ``n_frames`` ended it, the last one requested (those never came)."""
        return self.n_frames - 1 if self.past_end else self.highest_index

    @property
    def n_lost(self) -> int:
        """Frames missing between the first and :attr:`last_index`."""
        return self.last_index + 1 - self.n_accepted

    def check(self, header: FrameHeader) -> int:
        """Check a frame against the acquisition, without recording it.

        Returns:
            The frame's index in the acquisition.

        Raises:
            ProtocolError: the frame does not belong in this acquisition (reason names why).
        """
        if self.first is None:
            self._check_beyond(0)
            return 0
        self._check_same_kind(header)
        index = header.frame - self.first.frame
        if index < 0:
            raise ProtocolError(
                "frame_before_first",
                f"frame {header.frame} comes before the acquisition's first frame "
                f"{self.first.frame}",
            )
        if index > self.highest_index + self.max_frame_gap:  # garbage must not end the run
            raise ProtocolError(
                "implausible_frame_id",
                f"frame {header.frame} is more than {self.max_frame_gap} beyond the highest "
                f"frame id seen ({self.first.frame + self.highest_index})",
            )
        self._check_beyond(index)
        if index < len(self._seen) and self._seen[index]:
            raise ProtocolError(
                "duplicate_frame_id", f"frame {header.frame} was already received; kept the first"
            )
        return index

    def record(self, header: FrameHeader, index: int) -> int:
        """Record a frame that :meth:`check` accepted at ``index`` (the same header)."""
        if self.first is None:
            self.first = header
        if index >= len(self._seen):
            self._seen.extend(bytes(max(index + 1 - len(self._seen), len(self._seen))))
        self._seen[index] = 1
        self.highest_index = max(self.highest_index, index)
        self.n_accepted += 1
        return index

    def accept(self, header: FrameHeader) -> int:
        """Check a frame and record it; returns its index."""
        return self.record(header, self.check(header))

    def missing_indices(self) -> npt.NDArray[np.int64]:
        """Indices in ``0 .. last_index`` that never arrived."""
        end = self.last_index + 1
        seen = np.zeros(end, np.uint8)
        known = min(end, len(self._seen))
        seen[:known] = np.frombuffer(self._seen, np.uint8, known)
        return np.flatnonzero(seen == 0).astype(np.int64)

    def _check_same_kind(self, header: FrameHeader) -> None:
        assert self.first is not None
        if header.shape != self.first.shape:
            raise ProtocolError(
                "shape_changed",
                f"frame {header.frame} has shape {list(header.shape)}, but this acquisition's "
                f"frames are {list(self.first.shape)}",
            )
        if header.type != self.first.type or header.endianness != self.first.endianness:
            raise ProtocolError(
                "type_changed",
                f"frame {header.frame} is {header.type}/{header.endianness}, but this "
                f"acquisition's frames are {self.first.type}/{self.first.endianness}",
            )

    def _check_beyond(self, index: int) -> None:
        if self.n_frames and index >= self.n_frames:
            self.past_end = True
            raise ProtocolError(
                "beyond_n_frames",
                f"frame index {index} is beyond the {self.n_frames} frames requested",
            )
