"""The control server's log lines: plain key=value, or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys

from pco_writer.control import JsonFormatter, PlainFormatter


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({
        "name": "pco_writer.control", "levelno": logging.WARNING, "levelname": "WARNING",
        "msg": message, "args": args,
    })  # fmt: skip
    made.__dict__.update(extra)
    return made


def test_a_json_line_carries_time_level_logger_message_and_the_extra_fields() -> None:
    line = JsonFormatter().format(record('writer[%d] said "%s"\nover two lines', 9555, "hi",
                                         writer_port=9555))  # fmt: skip
    assert "\n" not in line, "one record, one line"
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "pco_writer.control"
    assert entry["msg"] == 'writer[9555] said "hi"\nover two lines'
    assert entry["writer_port"] == 9555 and entry["time"][10] == "T"
    assert "args" not in entry and "levelno" not in entry, "only what a reader wants"


def test_a_json_line_leaves_out_uvicorns_coloured_copy_of_the_message() -> None:
    line = JsonFormatter().format(record("started", color_message="\x1b[1mstarted\x1b[0m"))
    assert "color_message" not in json.loads(line) and "\\u001b" not in line


def test_a_json_line_keeps_the_whole_traceback() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        failed = record("it failed")
        failed.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(failed))
    assert entry["exc"].startswith("Traceback") and entry["exc"].endswith("ValueError: bad value")


def test_the_plain_line_stays_key_value() -> None:
    line = PlainFormatter().format(record("started %s", "x"))
    assert ' level=WARNING logger=pco_writer.control msg="started x"' in line
