"""Output file names: printf-style roll-over templates, as pco_rclient makes them."""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pco_writer.errors import ConfigError

__all__ = ["OutputFiles"]

log = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r"%(0?\d+)?d")


@dataclass(frozen=True)
class OutputFiles:
    """Where each file of an acquisition goes.

    Args:
        template: the output path; with roll-over, a printf template such as ``scan_%03d.h5``
            filled with the 1-based file number.
        max_frames_per_file: frames per file; 0 for a single file.
    """

    template: str
    max_frames_per_file: int = 0

    @classmethod
    def from_output(cls, output: str, n_frames: int, max_frames_per_file: int) -> OutputFiles:
        """Build from the user's output path, adding ``_%03d`` when roll-over needs it."""
        if not output or output.endswith(("/", os.sep)):
            raise ConfigError(f"output file {output!r} must name a file, e.g. /data/scan.h5")
        if max_frames_per_file < 0:
            raise ConfigError(f"max_frames_per_file must be >= 0, got {max_frames_per_file}")
        unescaped = output.replace("%%", "")
        n_placeholders = len(_PLACEHOLDER.findall(unescaped))
        if "%" in _PLACEHOLDER.sub("", unescaped):
            raise ConfigError(
                f"output file {output!r} has a '%' that is not a file-number placeholder; "
                "use %d or %03d for the number and %% for a literal '%'"
            )
        if n_placeholders > 1:
            raise ConfigError(
                f"output file {output!r} has {n_placeholders} placeholders; use at most one "
                "(e.g. scan_%03d.h5)"
            )
        multi = max_frames_per_file > 0 and (n_frames == 0 or n_frames > max_frames_per_file)
        if n_placeholders == 0 and multi:
            root, ext = os.path.splitext(output)
            output = f"{root}_%03d{ext or '.h5'}"
            log.warning(
                "output file has no file-number placeholder but the acquisition may need "
                "several files of %d frames: writing to %s",
                max_frames_per_file,
                output,
            )
        return cls(output, max_frames_per_file)

    def file_number(self, index: int) -> int:
        """The 1-based number of the file that holds the frame at ``index``."""
        return index // self.max_frames_per_file + 1 if self.max_frames_per_file else 1

    def first_index(self, number: int) -> int:
        """The acquisition index of the first frame of file ``number``."""
        return (number - 1) * self.max_frames_per_file

    def existing_numbers(self) -> list[int]:
        """Numbers of the files of this template that exist already (one directory look-up)."""
        unescaped = self.template.replace("%%", "\0")
        match = _PLACEHOLDER.search(unescaped)
        if match is None:
            return [1] if self.path(1).exists() else []
        head, tail = (unescaped[: match.start()], unescaped[match.end() :])
        head, tail = (part.replace("\0", "%") for part in (head, tail))
        found = []
        for name in glob.iglob(glob.escape(head) + "*" + glob.escape(tail)):
            digits = name[len(head) : len(name) - len(tail)].lstrip(" ")  # %3d pads with spaces
            if digits.isdigit() and self.path(int(digits)) == Path(name):
                found.append(int(digits))
        return sorted(found)

    def path(self, number: int) -> Path:
        """The path of file ``number`` (1-based)."""
        if _PLACEHOLDER.search(self.template.replace("%%", "")):
            return Path(self.template % number)
        return Path(self.template.replace("%%", "%"))
