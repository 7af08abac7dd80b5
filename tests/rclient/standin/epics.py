"""A stand-in for pyepics' ``caput``/``caget``: the PVs of a pco camera IOC drive a simulated
camera, for PSI's acceptance scripts (pco_rclient/tests) in tests/rclient.

The scripts run the camera through its IOC: ``IOC:SAVESTOP`` the frames to send,
``IOC:CAMERA`` 1/0 on/off, ``IOC:FTRANSFER`` 1 to send them. Here ``FTRANSFER`` 1 starts a
simulated camera that sends ``SAVESTOP`` frames from the address of that IOC's camera, and
``CAMERA`` 0 stops it. The addresses come from ``$PCO_STANDIN_CAMERAS``
(``{"X02DA-CCDCAM1": "tcp://127.0.0.1:8080", ...}``). Other PVs are only remembered.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from pco_writer.simulate import CameraSimulator

__all__ = ["caget", "caput"]

SHAPE = (64, 80)
FPS = 100.0

_pvs: dict[str, Any] = {}
_cameras: dict[str, tuple[CameraSimulator, threading.Thread]] = {}


def caput(pvname: str, value: Any, **_: Any) -> int:
    """Set a PV; the camera's PVs start and stop its simulated camera. Returns 1 (done)."""
    _pvs[pvname] = value
    ioc, _sep, field = pvname.partition(":")
    if field == "FTRANSFER" and int(value) == 1:
        _start(ioc, int(_pvs.get(f"{ioc}:SAVESTOP", 0)))
    elif field == "CAMERA" and int(value) == 0:
        _stop(ioc)
    return 1


def caget(pvname: str, **_: Any) -> Any:
    """The value last put, or None."""
    return _pvs.get(pvname)


def _start(ioc: str, frames: int) -> None:
    _stop(ioc)
    address = json.loads(os.environ["PCO_STANDIN_CAMERAS"])[ioc]
    sim = CameraSimulator(address, SHAPE, fps=FPS, frames=frames, start_frame=1)
    sim.bind()
    thread = threading.Thread(target=sim.run, name=f"camera-{ioc}", daemon=True)
    thread.start()
    _cameras[ioc] = (sim, thread)


def _stop(ioc: str) -> None:
    if ioc in _cameras:
        sim, thread = _cameras.pop(ioc)
        sim.stop()
        thread.join(5.0)
        sim.close(linger_ms=0)
