"""The control server's status page data, preview and metrics, with real writer processes."""

from __future__ import annotations

import re
from typing import Any

import httpx
from _control_helpers import camera, camera_on_cue, free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_control_server import post_raw, rclient_body

from pco_writer.control import ControlServer


def metrics(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``, read by prometheus-client's own parser."""
    answer = http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def sample(values: dict[Any, float], name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def ended_runs(http: httpx.Client, address: str) -> float:
    name = "pco_writer_acquisitions_total"
    return sum(v for (n, labels), v in metrics(http).items()
               if n == name and ("camera", address) in labels)  # fmt: skip


def test_before_any_acquisition_the_page_loads_and_the_preview_says_there_is_no_frame(
    http: httpx.Client,
) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>pco-writer</title>" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "loads nothing else"
    preview = http.get("/preview")
    assert preview.status_code == 404
    assert preview.json()["detail"] == "no frame yet: this server has had no acquisition"
    overview = http.get("/overview").json()
    assert overview["cameras"] == []
    assert overview["server"]["running_writers"] == 0 and overview["server"]["pid"] > 0
    assert sample(metrics(http), "pco_writer_running_writers") == 0


def test_counters_outlive_the_writer_processes_and_add_up_every_run(http: httpx.Client) -> None:
    port = free_port()
    with camera(frames=20) as (address, _):
        assert post_raw(http, rclient_body(address, port, n_frames="20"))["success"]
        wait_for(lambda: ended_runs(http, address) == 1, what="the first run counted")
    first = metrics(http)
    with camera(frames=15) as (address2, _):
        body = rclient_body(address2, port, n_frames="15", output_file="b.h5")
        assert post_raw(http, body)["success"]
        wait_for(lambda: ended_runs(http, address2) == 1, what="the second run counted")
    second = metrics(http)
    assert sample(first, "pco_writer_frames_written_total", camera=address) == 20
    assert sample(first, "pco_writer_frames_received_total", camera=address) == 20
    assert sample(first, "pco_writer_acquisitions_total", camera=address,
                  end_reason="completed") == 1  # fmt: skip
    # the first writer process is gone; its counts are still there, beside the second's
    assert sample(second, "pco_writer_frames_written_total", camera=address) == 20
    assert sample(second, "pco_writer_frames_written_total", camera=address2) == 15
    batches = sample(second, "pco_writer_write_latency_seconds_count", camera=address2)
    assert 1 <= batches <= 15
    assert sample(second, "pco_writer_write_latency_seconds_bucket", camera=address2,
                  le="+Inf") == batches  # fmt: skip
    assert sample(second, "pco_writer_write_latency_seconds_sum", camera=address2) > 0
    assert sample(second, "pco_writer_running_writers") == 0
    assert sample(second, "pco_writer_data_root_free_bytes", camera=address2) > 0


def test_the_preview_follows_a_run_and_stays_on_its_last_frame(
    server: ControlServer, http: httpx.Client
) -> None:
    port = free_port()
    with camera_on_cue(frames=60, fps=40) as (address, go):
        assert post_raw(http, rclient_body(address, port, n_frames="60"))["success"]
        go()  # the writer and its API are up: 1.5 s of frames
        first = wait_for(lambda: (p := http.get("/preview")).status_code == 200 and p,
                         what="a preview")  # fmt: skip
        assert first.headers["content-type"] == "image/png"
        assert first.content.startswith(b"\x89PNG")
        running = http.get("/overview").json()["cameras"][0]["current"]
        assert running["port"] == port and running["n_frames"] == 60
        wait_for(lambda: ended_runs(http, address) == 1, timeout=20, what="the end")
    after = http.get("/preview")
    assert after.status_code == 200
    assert int(after.headers["x-frame-id"]) == 1059  # the run's last frame
    assert int(first.headers["x-frame-id"]) < 1059
    camera_view = http.get("/overview").json()["cameras"][0]
    assert camera_view["current"] is None
    last = camera_view["runs"][0]
    assert (last["end_reason"], last["end_kind"], last["n_written_frames"]) == (
        "completed", "completed", 60)  # fmt: skip
    assert last["n_lost_frames"] == 0 and last["error"] == ""
    assert sample(metrics(http), "pco_writer_frames_written_total", camera=address) == 60
