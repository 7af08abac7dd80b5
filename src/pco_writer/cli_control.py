"""Sub-commands of the control plane (server, acquire, status, stop, kill)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMANDS: list[Callable[[Any], None]] = []
