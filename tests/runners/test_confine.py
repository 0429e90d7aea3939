"""The sandbox itself, with real bubblewrap: what a confined process can and cannot reach.

Each test runs a small command the way the runners run a job's steps and reads what it saw.
Where this host cannot confine, the tests that need a sandbox are skipped and the ones about
refusing still run.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.jobs.runners import confine
from bot.jobs.runners.confine import Confinement, Jail, Limits, bwrap_args, detect, python_roots

HOST = detect()
needs_sandbox = pytest.mark.skipif(not HOST.confined, reason=f"cannot confine: {HOST.reason}")
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def run(jail: Jail, code: str) -> subprocess.CompletedProcess[str]:
    HOST.hand_over(*jail.writable)
    argv = HOST.wrap([sys.executable, "-c", code], jail)
    return subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=60, check=False)


def jail_in(folder: Path, **kw: object) -> Jail:
    folder.mkdir(exist_ok=True)
    return Jail(cwd=folder, writable=[folder], readonly=python_roots(sys.executable), **kw)  # type: ignore[arg-type]


@needs_sandbox
def test_only_the_jail_is_there_and_only_its_folder_is_writable(tmp_path: Path) -> None:
    secret = tmp_path / "bot.sqlite3"
    secret.write_text("the store")
    job = tmp_path / "job"
    done = run(
        jail_in(job),
        "import os, pathlib\n"
        f"print(pathlib.Path({str(secret)!r}).exists())\n"
        "pathlib.Path('mine').write_text('x')\n"
        "import sys\n"
        "try:\n"
        "    open(os.path.join(sys.prefix, 'planted.pth'), 'w')\n"
        "except OSError as exc:\n"
        "    print('refused', exc.strerror)\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n"
        "print(os.getuid(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n",
    )
    assert done.returncode == 0, done.stderr
    exists, refused, pids, ids = done.stdout.splitlines()
    assert exists == "False"
    assert refused.startswith("refused")
    assert (
        len(ast.literal_eval(pids)) <= 3
    )  # bubblewrap's init, the command, and nothing of the host
    uid, caps = ids.split()
    assert uid != "0" and int(caps, 16) == 0
    assert (job / "mine").read_text() == "x"


@needs_sandbox
def test_the_bots_environment_variables_never_enter(tmp_path: Path) -> None:
    argv = HOST.wrap(["/usr/bin/env"], jail_in(tmp_path / "job"))
    HOST.hand_over(tmp_path / "job")
    done = subprocess.run(argv, env={**ENV, "ONLY": "this"}, capture_output=True, text=True)
    names = {line.split("=", 1)[0] for line in done.stdout.splitlines()}
    assert names == {"PATH", "LANG", "ONLY", "PWD"}  # PWD: bubblewrap's --chdir
    assert "GITHUB_WEBHOOK_SECRET" not in done.stdout


@needs_sandbox
def test_limits_hold_for_file_size_and_processes(tmp_path: Path) -> None:
    limits = Limits(file_size_bytes=1024 * 1024, processes=16)
    done = run(
        jail_in(tmp_path / "job", limits=limits),
        "import os, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "try:\n"
        "    open('big', 'wb').write(b'x' * (2 * 1024 * 1024))\n"
        "except OSError as exc:\n"
        "    print('file refused', exc.strerror)\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(64):\n"
        "        if os.fork() == 0:\n"
        "            import time; time.sleep(5); os._exit(0)\n"
        "        n += 1\n"
        "except OSError:\n"
        "    print('fork refused after', n)\n",
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("file refused"), done
    assert lines[1].startswith("fork refused after"), done
    assert int(lines[1].split()[-1]) < 16


@needs_sandbox
def test_the_network_is_there_only_when_the_repository_says_so(tmp_path: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = threading.Thread(target=lambda: server.accept(), daemon=True)
    accepted.start()
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
        "    print('reached')\n"
        "except OSError:\n"
        "    print('unreachable')\n"
    )
    try:
        off = run(jail_in(tmp_path / "off", network=False), probe)
        on = run(jail_in(tmp_path / "on", network=True), probe)
    finally:
        server.close()
    assert off.stdout.strip() == "unreachable"  # its own loopback, not the host's
    assert on.stdout.strip() == "reached"


@needs_sandbox
def test_shared_memory_works_inside(tmp_path: Path) -> None:
    done = run(
        jail_in(tmp_path / "job"),
        "from multiprocessing import shared_memory\n"
        "s = shared_memory.SharedMemory(create=True, size=4096); s.close(); s.unlink()\n"
        "print('ok')\n",
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_only_the_leased_gpus_device_nodes_are_bound() -> None:
    args = bwrap_args(Jail(cwd=Path("/tmp/x"), gpus=("1",)), as_root=False)
    bound = [args[i + 1] for i, a in enumerate(args) if a == "--dev-bind-try"]
    assert "/dev/nvidia1" in bound and "/dev/nvidiactl" in bound
    assert "/dev/nvidia0" not in bound
    assert "--dev-bind-try" not in bwrap_args(Jail(cwd=Path("/tmp/x")), as_root=False)


def test_a_readonly_path_inside_a_writable_one_stays_readonly() -> None:
    args = bwrap_args(
        Jail(cwd=Path("/w"), writable=[Path("/w")], readonly=[Path("/w/env")]), as_root=False
    )
    order = [(args[i], args[i + 1]) for i, a in enumerate(args) if a in ("--bind", "--ro-bind")]
    assert order.index(("--bind", "/w")) < order.index(("--ro-bind", "/w/env"))


def test_bot_unconfined_jobs_runs_commands_as_they_are() -> None:
    unconfined = detect({"BOT_UNCONFINED_JOBS": "yes", "PATH": os.environ["PATH"]})
    assert unconfined.mode == "unconfined" and unconfined.refusal is None
    assert unconfined.wrap(["true"], Jail(cwd=Path("/"))) == ["true"]


def test_without_bubblewrap_nothing_runs_and_the_refusal_says_what_to_do(tmp_path: Path) -> None:
    missing = detect({"PATH": str(tmp_path)})
    assert missing.mode == "unavailable"
    assert missing.refusal is not None
    assert "bubblewrap (bwrap) is not installed" in missing.refusal
    assert "apt-get install bubblewrap" in missing.refusal
    assert "BOT_UNCONFINED_JOBS=yes" in missing.refusal
    with pytest.raises(confine.ConfinementUnavailable):
        missing.wrap(["true"], Jail(cwd=tmp_path))


def test_a_bubblewrap_that_cannot_make_a_sandbox_is_reported_with_its_words(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    found = detect({"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert found.mode == "unavailable"
    assert "No permissions to create new namespace" in found.reason


def test_limits_are_positive_integers() -> None:
    with pytest.raises(ValueError, match="processes"):
        Limits(processes=0)
    assert Limits(**Limits().as_json()) == Limits()


def test_a_venvs_interpreter_brings_its_base_installation() -> None:
    roots = python_roots(sys.executable)
    assert Path(sys.prefix) in roots or Path(sys.base_prefix) in roots
    assert all(not r.is_relative_to("/usr") for r in roots)


def test_an_unconfined_confinement_changes_no_files(tmp_path: Path) -> None:
    Confinement("unconfined").hand_over(tmp_path)
    assert tmp_path.stat().st_uid == os.getuid()
