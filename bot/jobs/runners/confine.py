"""Confinement: every process started on pull-request content runs inside bubblewrap.

A pull request's tests, the build of its environment (pip runs the build scripts of whatever
its dependency files name), ruff over its files and git writing its tree all run code or parse
data that its author chose. Each runs in a sandbox made by bubblewrap (`bwrap`, Debian's
`bubblewrap`), the tool Flatpak and others use for exactly this, rather than a home-made one:

- its own PID, IPC and UTS namespaces, a `/proc` of that PID namespace only, and, when the
  repository turns the network off, its own network namespace with loopback alone;
- a root file system made of read-only system directories (`/usr` and its links, a short list
  of `/etc` files, `/sys`), a private `/tmp`, a fresh `/dev` with only the leased GPUs' nodes,
  plus the paths the step names: its job directory writable, interpreters and environments
  read-only. Nothing else of the host is there: not the bot's data directory, its database,
  key file, `.env`, other jobs' checkouts, nor the bot's own environment variables (each step
  passes an environment of its own making);
- an unprivileged user with no capabilities. Where the bot runs as root, the sandbox is made
  without a user namespace and `setpriv` drops to `nobody` inside it, so the job is a real
  unprivileged user of the host (a process limit does not bind root);
- limits on memory, processes and file size, set by `prlimit` before the step starts;
- `--die-with-parent` and the PID namespace: when the step's main process ends, or the bot
  kills the sandbox (cancel, timeout), the kernel ends every process of the job, a `setsid`
  daemon and a child holding the output pipe included.

Where the host cannot confine (no bubblewrap, user namespaces off) nothing of a pull request
runs: the runners refuse with `reason`, and `bot doctor` fails with the same words. An operator
of a private repository whose authors are all trusted may set `BOT_UNCONFINED_JOBS=yes`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

UNCONFINED_VARIABLE = "BOT_UNCONFINED_JOBS"
#: the host user a root bot's jobs run as, and the user (and group) inside a user namespace
NOBODY = 65534
INSIDE_ID = 1000
GIB = 1024**3

#: `/etc` entries a program needs to resolve names, verify TLS and find its libraries; the rest
#: of `/etc` (where a deployment keeps its `.env` and keys) stays out of the sandbox
ETC_ENTRIES = (
    "resolv.conf",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "services",
    "protocols",
    "passwd",
    "group",
    "localtime",
    "timezone",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "pki",
    "crypto-policies",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "mime.types",
    "fonts",
    "pip.conf",
    "xdg/pip",
    "os-release",
    "debian_version",
    "lsb-release",
)
#: a private, empty, writable folder each in every sandbox
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run")  # noqa: S108 - inside the sandbox, its own
#: top-level directories that are often links into `/usr` (merged-/usr systems)
SYSTEM_TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: NVIDIA's control nodes every CUDA process opens, besides its own GPUs' `/dev/nvidiaN`
NVIDIA_CONTROL_NODES = (
    "/dev/nvidiactl",
    "/dev/nvidia-uvm",
    "/dev/nvidia-uvm-tools",
    "/dev/nvidia-modeset",
)
HOW_TO_FIX = (
    "The operator can install bubblewrap (`apt-get install bubblewrap`) and allow unprivileged"
    " user namespaces (`sysctl kernel.unprivileged_userns_clone=1`; on Ubuntu 24.04 and later"
    " also `kernel.apparmor_restrict_unprivileged_userns=0`), then restart the bot; `bot doctor`"
    f" checks it. For a private repository whose authors are all trusted, {UNCONFINED_VARIABLE}"
    "=yes runs jobs without confinement."
)


@dataclass(frozen=True)
class Limits:
    """What one sandboxed step may use; defaults fit a GPU test run of a large model."""

    #: bytes of data (heap and private writable mappings) per process; CUDA's address-space
    #: reservations are not data, so a GPU run is not refused for them
    memory_bytes: int = 64 * GIB
    #: processes and threads of the job's user
    processes: int = 4096
    #: the largest file a process may write (a checkpoint, a log)
    file_size_bytes: int = 32 * GIB

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "processes", "file_size_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer")

    def as_json(self) -> dict[str, int]:
        """As a run's spec stores it; `RunRequest` reads it back."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Jail:
    """What one step sees: `cwd` and `writable` read-write, `readonly` read-only, nothing else
    of the host but the system directories."""

    cwd: Path
    writable: Sequence[Path] = ()
    readonly: Sequence[Path] = ()
    network: bool = False
    #: NVIDIA device indices leased to the step (as `nvidia-smi` numbers them)
    gpus: Sequence[str] = ()
    limits: Limits = field(default_factory=Limits)


Mode = Literal["bwrap", "unconfined", "unavailable"]


@dataclass(frozen=True)
class Confinement:
    """How this host confines pull-request code; `wrap` turns an argv into a confined one."""

    mode: Mode
    #: why the host cannot confine, or what unconfined means; "" when confined
    reason: str = ""
    bwrap: str = "bwrap"
    #: the host user the sandbox runs as when the bot is root (None: the bot's own user, mapped
    #: to an unprivileged one inside a user namespace)
    host_user: int | None = None

    @property
    def confined(self) -> bool:
        return self.mode == "bwrap"

    @property
    def refusal(self) -> str | None:
        """The words a pull request and `bot doctor` get when no PR code may run here."""
        if self.mode != "unavailable":
            return None
        return (
            f"This host cannot confine pull-request code ({self.reason}), so none runs."
            f" {HOW_TO_FIX}"
        )

    def hand_over(self, *paths: Path) -> None:
        """Make what the bot created for a job (its directory, a new environment) the sandbox
        user's, so the job can write there; a no-op unless the bot is root."""
        if self.host_user is None or not self.confined:
            return
        for top in paths:
            os.lchown(top, self.host_user, self.host_user)
            for root, dirs, files in os.walk(top):
                for name in (*dirs, *files):
                    os.lchown(Path(root, name), self.host_user, self.host_user)

    def wrap(self, argv: Sequence[str], jail: Jail) -> list[str]:
        """`argv` as it runs in `jail`; unchanged when the operator chose no confinement."""
        if self.mode == "unconfined":
            return list(argv)
        if self.mode == "unavailable":
            raise ConfinementUnavailable(self.refusal or self.reason)
        options = bwrap_args(jail, as_root=self.host_user is not None)
        return [self.bwrap, *options, *self._drop(), *_prlimit(jail.limits), "--", *argv]

    def _drop(self) -> list[str]:
        if self.host_user is None:
            return []
        uid = str(self.host_user)
        return [
            shutil.which("setpriv") or "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--no-new-privs",
            "--",
        ]


class ConfinementUnavailable(RuntimeError):
    """A step asked to run PR content on a host that cannot confine it."""


def _prlimit(limits: Limits) -> list[str]:
    return [
        shutil.which("prlimit") or "/usr/bin/prlimit",
        f"--data={limits.memory_bytes}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_size_bytes}",
        "--core=0",
    ]


def bwrap_args(jail: Jail, *, as_root: bool) -> list[str]:
    """bubblewrap's options for `jail`, up to (not including) the command."""
    args = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "bot-job",
    ]
    if not as_root:
        args += ["--unshare-user", "--uid", str(INSIDE_ID), "--gid", str(INSIDE_ID)]
    if not jail.network:
        args.append("--unshare-net")
    args += ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_TOP:
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", str(top.readlink()), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    args += ["--ro-bind-try", "/sys", "/sys", "--proc", "/proc", "--dev", "/dev"]
    for private in PRIVATE_DIRS:
        args += ["--tmpfs", private]
    # Shared memory as a host gives it (PyTorch's data loaders and NCCL need it): the job's own.
    args += ["--tmpfs", "/dev/shm", "--chmod", "1777", "/dev/shm"]  # noqa: S108 - its own
    for node in gpu_nodes(jail.gpus):
        args += ["--dev-bind-try", node, node]
    etc = [Path("/etc") / entry for entry in ETC_ENTRIES if (Path("/etc") / entry).exists()]
    # A bind's parents are made by bubblewrap with the modes of the host's (`/root` is 0700),
    # which the unprivileged user could not cross; they are made open first (after the private
    # folders, whose mounts would hide them).
    for parent in _parents([*etc, *_absolute(jail.writable), *_absolute(jail.readonly)]):
        args += ["--perms", "0755", "--dir", str(parent)]
    for path in etc:
        args += ["--ro-bind", str(path), str(path)]

    writable = _absolute(jail.writable)
    readonly = [p for p in _absolute(jail.readonly) if p not in writable]
    mounts = [("--ro-bind", p) for p in readonly] + [("--bind", p) for p in writable]
    # Shorter paths first, so a read-only environment inside a writable folder stays read-only.
    for option, path in sorted(mounts, key=lambda m: len(m[1].parts)):
        args += [option, str(path), str(path)]
    args += ["--chdir", str(Path(jail.cwd).absolute())]
    return args


def _absolute(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        absolute = Path(os.path.abspath(path))  # noqa: PTH100 - the path as named, links kept
        if absolute not in out and absolute != Path("/"):
            out.append(absolute)
    return out


def _parents(paths: Iterable[Path]) -> list[Path]:
    system = {Path("/usr"), *(Path(p) for p in PRIVATE_DIRS)}
    found: set[Path] = set()
    for path in paths:
        for parent in path.parents:
            if parent != Path("/") and parent not in system:
                found.add(parent)
    return sorted(found, key=lambda p: len(p.parts))


def gpu_nodes(indices: Sequence[str]) -> list[str]:
    """The device nodes of the leased GPUs (and the control nodes), as bind targets.

    `nvidia-smi` numbers GPUs in PCI bus order; a node's minor number is the driver's, read from
    `/proc/driver/nvidia/gpus/<bus id>/information` where the driver says it.
    """
    if not indices:
        return []
    minors = _minor_numbers()
    nodes = [f"/dev/nvidia{minors.get(str(i), str(i))}" for i in indices]
    return [*NVIDIA_CONTROL_NODES, *nodes]


def _minor_numbers() -> dict[str, str]:
    root = Path("/proc/driver/nvidia/gpus")
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for index, bus in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
            text = (bus / "information").read_text(errors="replace")
            match = re.search(r"^Device Minor:\s*(\d+)", text, re.M)
            if match:
                out[str(index)] = match.group(1)
    return out


def python_roots(python: str | os.PathLike[str]) -> list[Path]:
    """What an interpreter needs to be visible in a sandbox: its virtual environment (if it is
    one) and the installation that environment was made from."""
    exe = Path(os.path.abspath(python))  # noqa: PTH100 - a venv's python is a link
    roots: list[Path] = []
    venv = exe.parent.parent
    cfg = venv / "pyvenv.cfg"
    if cfg.is_file():
        roots.append(venv)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in cfg.read_text().splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "home" and value.strip():
                    roots.append(Path(value.strip()).parent)
    with contextlib.suppress(OSError):
        roots.append(exe.resolve().parent.parent)
    return [r for r in dict.fromkeys(roots) if not r.is_relative_to("/usr") and r != Path("/")]


@functools.cache
def _probe(bwrap: str, host_user: int | None) -> str | None:
    """Run a trivial command the way jobs run; None when it worked, else bubblewrap's words."""
    confinement = Confinement("bwrap", bwrap=bwrap, host_user=host_user)
    with tempfile.TemporaryDirectory(prefix="bot-confine-probe-") as tmp:
        confinement.hand_over(Path(tmp))
        jail = Jail(cwd=Path(tmp), writable=[Path(tmp)])
        argv = confinement.wrap(["/bin/sh", "-c", "exit 0"], jail)
        try:
            done = subprocess.run(
                argv,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap could not start: {exc}"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit code {done.returncode}"
        return f"bubblewrap cannot make a sandbox here: {why}"
    return None


def detect(env: Mapping[str, str] | None = None) -> Confinement:
    """How this host confines jobs, checked by making one sandbox (cached per process)."""
    env = os.environ if env is None else env
    if env.get(UNCONFINED_VARIABLE, "").strip().lower() in ("1", "yes", "true", "on"):
        return Confinement(
            "unconfined",
            reason=f"{UNCONFINED_VARIABLE}=yes: pull-request code runs with the bot's rights",
        )
    bwrap = shutil.which("bwrap", path=env.get("PATH") or "/usr/local/bin:/usr/bin:/bin")
    if bwrap is None:
        return Confinement("unavailable", reason="bubblewrap (bwrap) is not installed")
    host_user = NOBODY if os.geteuid() == 0 else None
    for tool in ("setpriv", "prlimit"):
        if shutil.which(tool) is None:
            return Confinement("unavailable", reason=f"{tool} (util-linux) is not installed")
    problem = _probe(bwrap, host_user)
    if problem is not None:
        return Confinement("unavailable", reason=problem, bwrap=bwrap)
    return Confinement("bwrap", bwrap=bwrap, host_user=host_user)
