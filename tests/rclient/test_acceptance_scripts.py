"""PSI's own acceptance scripts of pco_rclient 0.4.11 against ``pco-writer server``.

They exit with their count of problems. Run as _acceptance.py says (addresses and paths
rewritten, pco_writer.json on local ports, a stand-in for the EPICS camera), in namespaces of
their own: the debug scripts talk to the addresses that the client fixes for
``PcoWriter(debug=True)`` and count the host name ``xbl-daq-32.psi.ch`` in the log.

Where a script counts a problem, the problem is the script's or the client's own, as
docs/pco_rclient.md shows for each; the tests pin exactly those, so that any other problem,
one of ours, fails them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import pytest
from _rclient import VENDOR, rclient_or_skip

HARNESS = Path(__file__).with_name("_acceptance.py")
NAMESPACES = ["unshare", "--map-root-user", "--net", "--uts", "--pid", "--fork", "--mount",
              "--mount-proc", "--kill-child"]  # fmt: skip

# What each script counts as a problem against our servers, and why it is not one of ours
# (docs/pco_rclient.md, "PSI's acceptance scripts").
EXPECTED_PROBLEMS = {
    "pco_run_1.py": [],
    "pco_run_2.py": [],
    "pco_run_3.py": [],
    "pco_run_4.py": [],
    # expects get_status() to turn 'error' by itself after a refused start; the client sets
    # 'error' only in get_server_error(), which the script does not call
    "pco_run_5.py": ["pco_controller.error... ⨯"],
}
EXPECTED_UNITTEST = {
    # debug=True leaves user_id at -1, which the client's own validate_configuration() refuses
    "test_configure": "FAIL",
    # follows from test_configure: the client refuses to start() unconfigured
    "test_start": "ERROR",
    # isinstance(..., unicode): Python 2 (NameError)
    "test_get_written_frames": "ERROR",
    # wants 'unknown' from /status/<port> after a run, where the original server and ours
    # answer the last run ('finished'); pco_run_2/4/5 need 'finished' there
    "test_get_status_writer": "FAIL",
}


def namespaces_or_skip() -> None:
    """Skip, saying why, where this machine cannot give a process its own namespaces."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to give the scripts namespaces of their own")
    probe = subprocess.run([*NAMESPACES, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make namespaces here ({probe.stderr.strip()})")


def run_session(session: str, work: Path, scripts: list[str]) -> dict[str, Any]:
    rclient_or_skip()
    namespaces_or_skip()
    try:
        proc = subprocess.run(
            [*NAMESPACES, sys.executable, str(HARNESS), "--session", session,
             "--tests", str(VENDOR / "pco_rclient" / "tests"), "--work", str(work), *scripts],
            capture_output=True, text=True, timeout=100, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        done = work / "scripts" / "results.jsonl"
        results = list(map(json.loads, done.read_text().splitlines())) if done.exists() else []
        summary = [(r["script"], r["exit_code"], r["seconds"]) for r in results]
        killed = [f"{r['script']}:\n{r['output'][-3000:]}" for r in results if r["exit_code"] < 0]
        log = (work / "server.log").read_text()[-6000:] if (work / "server.log").exists() else ""
        raise AssertionError(
            f"the session took over 100 s; finished: {summary}\n{''.join(killed)}\n{log}"
        ) from None
    assert proc.returncode == 0, proc.stderr[-5000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["unused_rewrites"] == [], "a rewrite found nothing: the scripts changed?"
    return report


def problems(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if "⨯" in line]


def unittest_outcomes(output: str) -> dict[str, str]:
    found = re.findall(r"^(FAIL|ERROR): (test_\w+) ", output, flags=re.MULTILINE)
    return {name: kind for kind, name in found}


def check_scripts(results: dict[str, dict[str, Any]]) -> None:
    for script, result in results.items():
        if script in EXPECTED_PROBLEMS:
            expected = EXPECTED_PROBLEMS[script]
            assert problems(result["output"]) == expected, result["output"][-4000:]
            assert result["exit_code"] == len(expected), result["output"][-4000:]


def frames_in_files(work: Path) -> list[int]:
    """Frames in each file the debug scripts wrote (they number them all: _001.h5...)."""
    counts = []
    for path in sorted((work / "home/hax_l/software/lib_cpp_h5_writer/tomcat/output").iterdir()):
        with h5py.File(path, "r") as f:
            counts.append(len(f["exchange/data"]))
    return counts


def test_the_debug_scripts_that_stop_early_or_roll_over_count_no_problem(tmp_path: Path) -> None:
    report = run_session("debug", tmp_path, ["pco_run_1.py", "pco_run_2.py", "pco_run_3.py"])
    results = {r["script"]: r for r in report["results"]}
    check_scripts(results)
    assert results["pco_run_1.py"]["interrupted"] and results["pco_run_3.py"]["interrupted"]
    # run 1: 10 of 20 frames, then Ctrl-C and stop; run 2: 20; run 3: 15 in files of 10
    assert frames_in_files(tmp_path) == [10, 20, 10, 5]


def test_the_debug_scripts_of_whole_runs_count_only_their_own_problems(tmp_path: Path) -> None:
    scripts = ["pco_run_4.py", "pco_unittest.py", "pco_run_5.py"]  # unittest reads run 4's
    report = run_session("debug", tmp_path, scripts)
    results = {r["script"]: r for r in report["results"]}
    check_scripts(results)
    unittest = results["pco_unittest.py"]
    assert unittest_outcomes(unittest["output"]) == EXPECTED_UNITTEST, unittest["output"][-6000:]
    assert "Ran 18 tests" in unittest["output"] and unittest["exit_code"] == 1
    assert frames_in_files(tmp_path) == [20, 20]  # run 5's second start wrote nothing


def test_pco_simultaneous_drives_two_cameras_on_two_control_ports_at_once(
    tmp_path: Path,
) -> None:
    report = run_session("simultaneous", tmp_path, ["pco_run.py", "pco_simultaneous.py"])
    results = {r["script"]: r for r in report["results"]}
    assert results["pco_run.py"]["exit_code"] == 0  # it only defines pco_test()
    out = results["pco_simultaneous.py"]["output"]
    assert results["pco_simultaneous.py"]["exit_code"] == 0, out[-4000:]
    # its two processes' own counts of problems are not its exit code: read their checks
    assert problems(out) == [], out[-4000:]
    assert out.count("pco_controller.get_status_last_run()... (after start/stop) ✓") == 2, out
    files = sorted((tmp_path / "sls/X02DA/data/e18600/Data10/pco_test").glob("*.h5"))
    assert [f.name[-7:] for f in files] == ["pco1.h5", "pco2.h5"]
    for path in files:
        with h5py.File(path, "r") as f:
            assert len(f["exchange/data"]) == 20
