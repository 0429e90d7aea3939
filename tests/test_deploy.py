"""The deployment files: the Procfile and the systemd unit start the same server, and the unit
passes `systemd-analyze verify` where systemd is installed."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "maintainer-bot.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_procfile_serves_on_the_platforms_port():
    assert (ROOT / "Procfile").read_text().strip() == "web: python -m bot serve --port $PORT"


def test_the_unit_serves_on_loopback_behind_the_proxy_and_stops_gracefully():
    service = _unit()["Service"]
    argv = service["ExecStart"].split()
    assert argv[1:4] == ["-m", "bot", "serve"]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) > 30  # the bot's own 30 s grace fits inside
    assert service["EnvironmentFile"].startswith("/etc/")
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is not installed")
def test_systemd_analyze_verify_finds_nothing(tmp_path):
    # The unit names its install paths; verify checks that ExecStart exists, so point it here.
    text = UNIT.read_text().replace("/opt/maintainer-bot/.venv/bin/python", sys.executable)
    text = text.replace("/opt/maintainer-bot", str(ROOT))
    unit = tmp_path / "maintainer-bot.service"
    unit.write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "maintainer-bot" in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr
