"""``GET /metrics``: the monitor's numbers in the Prometheus text format (prometheus-client).

Every value is read from the monitor when Prometheus scrapes (a custom collector), so no
count is kept twice: counters are the ended runs' totals plus the running runs' statistics,
gauges the running runs' latest statistics. Names start with ``pco_writer_``; the
``camera`` label is the configured camera's name (the camera's address without one).
deploy/grafana/pco-writer.json is a dashboard of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pco_writer import __version__
from pco_writer.control._monitor import Monitor, RunView
from pco_writer.control._totals import Counts

__all__ = ["CONTENT_TYPE_LATEST", "metrics_registry", "metrics_text"]


def metrics_registry(monitor: Monitor) -> CollectorRegistry:
    """A registry of the monitor's metrics and the server process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(monitor))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format."""
    return generate_latest(registry)


class _RunCollector(Collector):
    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        views = self.monitor.views()
        cameras = self.monitor.camera_names()
        counts = {
            camera: self.monitor.totals.with_running(
                camera, [v.stats for v in views if v.camera == camera and not v.final]
            )
            for camera in cameras
        }
        yield from _counters(counts)
        yield _latency(counts)
        yield from _gauges(self.monitor, views, cameras)


def _counters(counts: dict[str, Counts]) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "pco_writer_frames_received", "Valid frames received from the camera.", labels=["camera"]
    )
    written = CounterMetricFamily(
        "pco_writer_frames_written", "Frames written to their file.", labels=["camera"]
    )
    by_reason = {
        "lost": ("Frames of the acquisitions' ranges not in a file, by reason.", "lost"),
        "dropped": (
            "Frames received but not written (killed, disk full...), by reason.",
            "dropped",
        ),  # fmt: skip
        "invalid": ("Messages that were no frame of the acquisition, by reason.", "invalid"),
    }
    families = {
        name: CounterMetricFamily(f"pco_writer_frames_{name}", doc, labels=["camera", "reason"])
        for name, (doc, _) in by_reason.items()
    }
    runs = CounterMetricFamily(
        "pco_writer_acquisitions", "Acquisitions ended, by end reason.",
        labels=["camera", "end_reason"],
    )  # fmt: skip
    for camera, c in counts.items():
        received.add_metric([camera], c.received)
        written.add_metric([camera], c.written)
        for name, (_, attribute) in by_reason.items():
            for reason, n in sorted(getattr(c, attribute).items()):
                families[name].add_metric([camera, reason], n)
        for kind, n in sorted(c.runs.items()):
            runs.add_metric([camera, kind], n)
    yield from (received, written, *families.values(), runs)


def _latency(counts: dict[str, Counts]) -> Metric:
    family = HistogramMetricFamily(
        "pco_writer_write_latency_seconds",
        "Per written batch: from the receipt of its first frame to the write into its file.",
        labels=["camera"],
    )
    for camera, c in counts.items():
        cumulative, buckets = 0, []
        for bound, n in zip((*c.latency_bounds, float("inf")), c.latency_counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric([camera], buckets, c.latency_sum)
    return family


def _gauges(monitor: Monitor, views: list[RunView], cameras: list[str]) -> Iterator[Metric]:
    running = [v for v in views if not v.final]
    yield GaugeMetricFamily("pco_writer_running_writers", "Writer processes running.",
                            value=len(running))  # fmt: skip
    info = GaugeMetricFamily("pco_writer_info", "The pco-writer version.", labels=["version"])
    info.add_metric([__version__], 1)
    yield info
    gauges: dict[str, tuple[str, Any]] = {
        "buffer_used_bytes": ("Bytes of the running writer's buffer in use.",
                              lambda v: v.stats.get("buffer_used_bytes", 0)),
        "buffer_capacity_bytes": ("Size of the running writer's buffer.",
                                  lambda v: v.run.settings.buffer_bytes),
        "receive_rate_frames_per_second": ("Frames received per second, last second or more.",
                                           lambda v: v.rates[0]),
        "write_rate_frames_per_second": ("Frames written per second, last second or more.",
                                         lambda v: v.rates[1]),
        "acquisition_frames_requested": ("Frames the running acquisition asked for (0: until "
                                         "stopped).", lambda v: v.run.settings.n_frames),
        "acquisition_frames_written": ("Frames the running acquisition has written.",
                                       lambda v: v.stats.get("n_written_frames", 0)),
    }  # fmt: skip
    for name, (doc, value) in gauges.items():
        family = GaugeMetricFamily(f"pco_writer_{name}", doc, labels=["camera"])
        for view in running:
            family.add_metric([view.camera], float(value(view)))
        yield family
    free = GaugeMetricFamily(
        "pco_writer_data_root_free_bytes", "Free bytes on the data root's disk.", labels=["camera"]
    )
    for camera in cameras:
        root = monitor.data_root(camera)
        try:
            free.add_metric([camera], shutil.disk_usage(root).free)
        except OSError:
            continue
    yield free
