"""docs/guide.md runs as written: every code block, in order, against real servers on loopback.

Each fenced block is preceded by an HTML comment that says what to do with it (a block
without one fails the test, so no example escapes):

- ``<!-- test: background -->``: each line is a command started in the background (servers,
  the camera), stopped when the test ends;
- ``<!-- test: run -->`` (``run, exit N``): the block runs (Python with this interpreter,
  bash with ``set -e`` and this environment's ``pco-writer`` first on the PATH) and must exit
  0 (or N);
- ``<!-- test: output -->``: each line must appear in the output of the block run before it,
  in order; ``...`` in a line stands for any text;
- ``<!-- test: file PATH -->``: the block is saved as PATH.

The guide's ports and data folder are replaced by free ports and a temporary folder before
anything runs (:data:`PORTS`, :data:`DATA`), so that the test never collides with a real
server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _control_helpers import free_port, wait_for

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
PORTS = (8080, 8081, 8089, 9555, 9556, 9557, 9901, 9902, 9903)
"""The ports the guide names, each replaced by a free one."""
DATA = "/data/e12345"
"""The guide's data folder, replaced by a temporary one."""
_BLOCK = re.compile(r"<!-- test: (?P<directive>[^>]*?) -->\s*\n```(?P<lang>\w*)\n(?P<body>.*?)```",
                    re.S)  # fmt: skip


@dataclass
class Block:
    """A code block of the guide and what the test does with it."""

    line: int
    directive: str
    lang: str
    body: str


def guide_blocks(text: str) -> list[Block]:
    """Every fenced block with its directive; fails on a block that has none."""
    blocks = [
        Block(text.count("\n", 0, m.start("body")) + 1, m["directive"].strip(), m["lang"],
              m["body"])
        for m in _BLOCK.finditer(text)
    ]  # fmt: skip
    n_fences = text.count("\n```") + text.startswith("```")
    assert 2 * len(blocks) == n_fences, "a code block of the guide has no <!-- test: ... -->"
    return blocks


def test_every_block_of_the_guide_says_how_it_is_tested() -> None:
    blocks = guide_blocks(GUIDE.read_text())
    assert {b.directive.split()[0].rstrip(",") for b in blocks} <= {
        "background", "run", "output", "file"
    }  # fmt: skip
    assert sum(b.directive.startswith("run") and b.lang == "python" for b in blocks) >= 5


@pytest.fixture
def substituted(tmp_path: Path) -> tuple[str, Path]:
    """The guide with free ports and a temporary data folder."""
    data = tmp_path / "e12345"
    data.mkdir()
    text = GUIDE.read_text().replace(DATA, str(data))
    for port in PORTS:
        text = re.sub(rf"\b{port}\b", str(free_port()), text)
    return text, data


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[str]]]:
    """The guide's servers and camera; terminated (then killed) when the test ends."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.timeout(400)
def test_the_guide_runs_as_written(
    substituted: tuple[str, Path], background: list[subprocess.Popen[str]]
) -> None:
    text, data = substituted
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PCO_WRITER_TOKEN", None)
    output = ""
    for block in guide_blocks(text):
        kind, _, rest = block.directive.partition(" ")
        where = f"guide.md line {block.line}"
        if kind == "file":
            Path(rest).parent.mkdir(parents=True, exist_ok=True)
            Path(rest).write_text(block.body)
        elif kind == "background":
            for line in filter(None, map(str.strip, block.body.splitlines())):
                background.append(_start(line, data, env))
                _await_listening(line, background[-1], where)
        elif kind.startswith("run"):
            exit_code = int(rest.removeprefix("exit ")) if rest else 0
            output = _run(block, data, env, exit_code, where)
        elif kind == "output":
            _assert_lines_in(block.body, output, where)


def _start(command: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _await_listening(command: str, proc: subprocess.Popen[str], where: str) -> None:
    """A server answers /ack on its port(s); a camera is up once its process runs a moment."""
    ports = re.findall(r"--port (\d+)", command)
    if "--config" in command:
        config = Path(command.split("--config", 1)[1].split()[0]).read_text()
        ports = re.findall(r"control_port: (\d+)", config)
    for port in ports:
        url = f"http://127.0.0.1:{port}/ack"
        wait_for(lambda u=url: _answers(u) or proc.poll() is not None, 30, f"{where}: {url}")
    wait_for(lambda: True, 0.5)
    assert proc.poll() is None, f"{where}: `{command}` exited with {proc.returncode}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _run(block: Block, cwd: Path, env: dict[str, str], exit_code: int, where: str) -> str:
    argv = [sys.executable, "-c", block.body] if block.lang == "python" else [
        "bash", "-ec", block.body]  # fmt: skip
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    out = done.stdout + done.stderr
    assert done.returncode == exit_code, f"{where} exited {done.returncode}:\n{out}"
    return out


def _assert_lines_in(expected: str, output: str, where: str) -> None:
    """Each expected line in the output, in order; ``...`` stands for any text."""
    at = 0
    for line in expected.strip().splitlines():
        pattern = ".*?".join(map(re.escape, line.split("...")))
        found = re.compile(pattern).search(output, at)
        assert found, f"{where}: {line!r} not in the output after:\n{output[at:]}"
        at = found.end()
