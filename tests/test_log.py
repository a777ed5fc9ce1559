"""Global -v/-q: what reaches stderr at each level (run in subprocesses: logging is process-wide)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIXED = ROOT / "tests" / "fixtures" / "samples_mixed.jsonl"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _ecellm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecellm", *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def test_quiet_prints_only_errors(tmp_path):
    loud = _ecellm("data", "export", str(MIXED), "-f", "messages", "-o", str(tmp_path / "a"))
    assert loud.returncode == 0 and "exported 20 samples as messages" in loud.stderr
    quiet = _ecellm("-q", "data", "export", str(MIXED), "-f", "messages", "-o", str(tmp_path / "b"))
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert quiet.stdout.strip() == str(tmp_path / "b")  # the result itself still goes to stdout
    bad = _ecellm("-q", "data", "export", str(tmp_path / "missing.jsonl"), "-f", "messages", "-o",
                  str(tmp_path / "c"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


_NOISE = """
import logging, os, sys, warnings
from ecellm import log
log.setup(int(sys.argv[1]))
assert os.environ["TRANSFORMERS_VERBOSITY"] == ("warning" if int(sys.argv[1]) > 0 else "error")
warnings.warn("a deprecated thing", FutureWarning)
logging.getLogger("transformers.x").warning("library warning")
logging.getLogger("peft").warning("peft warning")
logging.getLogger("ecellm.x").info("ecellm info")
logging.getLogger("ecellm.x").debug("ecellm debug")
logging.getLogger("ecellm.x").error("ecellm error")
"""


def _noise(level: int) -> str:
    proc = subprocess.run([sys.executable, "-c", _NOISE, str(level)], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_levels_decide_what_third_party_output_is_shown():
    quiet, default, verbose = _noise(-1), _noise(0), _noise(1)
    assert quiet.splitlines() == ["error: ecellm error"]
    assert default.splitlines() == ["ecellm info", "error: ecellm error"]
    for text in ("a deprecated thing", "library warning", "peft warning", "ecellm debug", "ecellm info"):
        assert text in verbose, (text, verbose)
