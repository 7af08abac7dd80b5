"""Output file names: printf-style roll-over templates, as pco_rclient makes them."""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass
from pathlib import Path

from pco_writer.errors import ConfigError
from pco_writer.names import (
    around_file_number,
    check_output_template,
    has_file_number,
    with_file_number,
)

__all__ = ["OutputFiles"]

log = logging.getLogger(__name__)


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
        """Build from the user's output path, adding ``_%03d`` when roll-over needs it.

        Raises:
            ConfigError: the path is not a valid output template (see ``names``).
        """
        if max_frames_per_file < 0:
            raise ConfigError(f"max_frames_per_file must be >= 0, got {max_frames_per_file}")
        template = with_file_number(check_output_template(output), n_frames, max_frames_per_file)
        if template != output:
            log.warning(
                "output file has no file-number placeholder but the acquisition may need "
                "several files of %d frames: writing to %s",
                max_frames_per_file,
                template,
            )
        return cls(template, max_frames_per_file)

    def file_number(self, index: int) -> int:
        """The 1-based number of the file that holds the frame at ``index``."""
        return index // self.max_frames_per_file + 1 if self.max_frames_per_file else 1

    def first_index(self, number: int) -> int:
        """The acquisition index of the first frame of file ``number``."""
        return (number - 1) * self.max_frames_per_file

    def existing_numbers(self) -> list[int]:
        """Numbers of the files of this template that exist already (one directory look-up)."""
        around = around_file_number(self.template)
        if around is None:
            return [1] if self.path(1).exists() else []
        head, tail = around
        found = []
        for name in glob.iglob(glob.escape(head) + "*" + glob.escape(tail)):
            digits = name[len(head) : len(name) - len(tail)].lstrip(" ")  # %3d pads with spaces
            if digits.isdigit() and self.path(int(digits)) == Path(name):
                found.append(int(digits))
        return sorted(found)

    def path(self, number: int) -> Path:
        """The path of file ``number`` (1-based)."""
        if has_file_number(self.template):
            return Path(self.template % number)
        return Path(self.template.replace("%%", "%"))
