"""Virtual environments for test runs, built once per repository and dependency set.

Installing torch takes minutes and gigabytes, so a job must not do it; yet the bot's own
environment must stay free of the model library's dependencies. Each repository gets cached
environments keyed by what decides their contents — the dependency parts of `pyproject.toml`,
`constraints.txt`, `requirements*.txt`, `setup.cfg`, `setup.py` and the install settings — and a
job reuses the one whose key matches its checkout.

Only the project's *dependencies* are installed, never the project itself: an environment is
shared by every commit with the same dependency files, so a copy of one commit's code inside it
would shadow the checkout of the next. The checkout is put on `PYTHONPATH` by the runner instead.
Every optional dependency group comes too, unless the repository's `[slow_ci] extras` narrows
them: a model repository's tests need its `models` group, and a default that left it out would
fail every job.

A build runs pip over files a pull request chose, so it runs confined: it may write its own new
environment and a private home, read the checkout and the interpreter, and nothing else; pip's
cache is off, since a cache shared between builds is one build's way into the next. Jobs see a
built environment read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.jobs.runners.base import stream_process
from bot.jobs.runners.confine import Confinement, Jail, detect, python_roots

#: bump when the layout of a built environment changes, so old ones are not reused
LAYOUT_VERSION = "1"
FIXED_FILES = ("pyproject.toml", "constraints.txt", "setup.cfg", "setup.py")
#: pip settings an operator may need (a mirror, a proxy, a CA); nothing else of the bot's
#: environment reaches pip
DEFAULT_PASS_ENV = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "SSL_CERT_FILE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "PIP_CONSTRAINT",
    "PIP_DEFAULT_TIMEOUT",
)
#: pip's configuration files outside any home: the host's index, links and certificates
PIP_CONFIG_FILES = (Path("/etc/pip.conf"), Path("/etc/xdg/pip/pip.conf"))


class _FromConfig:
    """The default of `EnvCache.ensure(extras=...)`, apart from None, which means every group."""


FROM_CONFIG = _FromConfig()


class EnvBuildError(RuntimeError):
    """The environment could not be built; the job ends in `error` with this message."""


@dataclass(frozen=True)
class EnvConfig:
    """How test environments are made. `python` set: use that interpreter, build nothing."""

    cache_dir: Path = Path("var/envs")
    python: str | None = None
    base_python: str = sys.executable
    #: optional-dependency groups of the project to install (e.g. ("models",)); None: every
    #: group the project declares, so tests that need one run without configuration
    extras: tuple[str, ...] | None = None
    #: installed besides the project's dependencies: the runner needs pytest
    packages: tuple[str, ...] = ("pytest",)
    requirement_files: tuple[str, ...] = ("requirements.txt",)
    pass_env: tuple[str, ...] = DEFAULT_PASS_ENV
    build_timeout_s: float = 3600.0


@dataclass(frozen=True)
class PythonEnv:
    python: Path
    key: str | None = None
    path: Path | None = None
    #: True when this call built it; False when it was reused or given by the config
    built: bool = False

    @property
    def bin_dir(self) -> Path:
        return self.python.parent


LogFn = Callable[[str], Awaitable[None]]


def dependency_files(checkout: Path) -> list[Path]:
    """The files whose change means a different environment, in a stable order."""
    found = [checkout / name for name in FIXED_FILES if (checkout / name).is_file()]
    found += sorted(p for p in checkout.glob("requirements*.txt") if p.is_file())
    return found


def _pyproject_deps_view(text: str) -> Any:
    # Only what pip would read: editing the ruff or pytest sections must not rebuild torch.
    data = tomllib.loads(text)
    project = data.get("project", {})
    return {
        "build-system": data.get("build-system"),
        "project": {
            k: project.get(k)
            for k in ("name", "requires-python", "dependencies", "optional-dependencies")
        },
    }


def environment_key(checkout: Path, config: EnvConfig) -> str:
    """A hash of the dependency files and the install settings; equal keys, same environment."""
    digest = hashlib.sha256()
    settings = {
        "layout": LAYOUT_VERSION,
        "base_python": str(Path(config.base_python).absolute()),
        "python_version": list(sys.version_info[:2]),
        "extras": None if config.extras is None else list(config.extras),
        "packages": list(config.packages),
        "requirement_files": list(config.requirement_files),
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for path in dependency_files(checkout):
        raw = path.read_bytes()
        if path.name == "pyproject.toml":
            # Unparsable: hash the bytes; pip will say what is wrong with the file.
            with contextlib.suppress(tomllib.TOMLDecodeError, UnicodeDecodeError):
                raw = json.dumps(_pyproject_deps_view(raw.decode()), sort_keys=True).encode()
        digest.update(f"\0{path.name}\0{len(raw)}\0".encode())
        digest.update(raw)
    return digest.hexdigest()


def install_args(checkout: Path, config: EnvConfig) -> list[str]:
    """`pip install` arguments for the checkout's dependencies; empty when there is nothing."""
    requirements: list[str] = []
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        try:
            project = tomllib.loads(pyproject.read_text()).get("project", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise EnvBuildError(f"pyproject.toml is not valid TOML: {exc}") from None
        requirements += _project_requirements(project, config.extras)
    files = [checkout / name for name in config.requirement_files if (checkout / name).is_file()]
    requirements += config.packages
    for req in requirements:
        # pip reads a leading "-" as an option: a dependency string must not smuggle one in.
        if not req.strip() or req.lstrip().startswith("-"):
            raise EnvBuildError(f"refusing dependency {req!r}: not a requirement specifier")
    if not requirements and not files:
        return []
    args: list[str] = []
    constraints = checkout / "constraints.txt"
    if constraints.is_file():
        args += ["-c", str(constraints)]
    for path in files:
        args += ["-r", str(path)]
    return args + list(dict.fromkeys(r.strip() for r in requirements))


def _project_requirements(project: dict[str, Any], extras: tuple[str, ...] | None) -> list[str]:
    name = _canonical(str(project.get("name", "")))
    optional = project.get("optional-dependencies", {}) or {}
    if not isinstance(optional, dict):
        raise EnvBuildError("pyproject.toml: [project.optional-dependencies] is not a table")
    if extras is None:
        extras = tuple(optional)
    out: list[str] = []
    seen_extras: set[str] = set()

    def add(reqs: list[str]) -> None:
        for req in reqs:
            match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", req)
            if match and name and _canonical(match[1]) == name:
                # `project[dev]` inside an extra: expand it instead of installing the project.
                for extra in (match[2] or "").split(","):
                    add_extra(extra.strip())
                continue
            out.append(req)

    def add_extra(extra: str) -> None:
        if not extra or extra in seen_extras:
            return
        if extra not in optional:
            raise EnvBuildError(f"pyproject.toml has no optional dependency group {extra!r}")
        seen_extras.add(extra)
        add(list(optional[extra]))

    add(list(project.get("dependencies", []) or []))
    for extra in extras:
        add_extra(extra)
    return out


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _slug(repo: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", repo).strip(".") or "repo"


class EnvCache:
    """Finds or builds the environment for a checkout; safe to share between concurrent jobs."""

    def __init__(
        self, config: EnvConfig | None = None, confinement: Confinement | None = None
    ) -> None:
        self.config = config or EnvConfig()
        self.confinement = confinement or detect()
        self._locks: dict[Path, asyncio.Lock] = {}

    def path_for(self, repo: str, key: str) -> Path:
        return self.config.cache_dir.absolute() / _slug(repo) / key[:24]

    async def ensure(
        self,
        repo: str,
        checkout: Path,
        log: LogFn | None = None,
        *,
        network: bool = True,
        extras: tuple[str, ...] | _FromConfig | None = FROM_CONFIG,
    ) -> PythonEnv:
        """The interpreter to run the checkout's tests with, building its environment if new.

        `network` and `extras` are the repository's settings (its `[slow_ci]`): without the
        network pip reaches only local indexes and links; `extras` are the optional dependency
        groups installed (None: all), part of the environment's key.
        """
        say = log or _quiet
        config = self.config
        if not isinstance(extras, _FromConfig):
            config = dataclasses.replace(config, extras=extras)
        if self.config.python:
            python = Path(self.config.python)
            if not _exists(python):
                raise EnvBuildError(f"the configured test interpreter {python} does not exist")
            return PythonEnv(python=python)
        key = environment_key(checkout, config)
        dest = self.path_for(repo, key)
        python = dest / "bin" / "python"
        if (dest / ".ready").is_file():
            await say(f"reusing test environment {dest.name} (dependency files unchanged)")
            _touch(dest / ".ready")
            return PythonEnv(python=python, key=key, path=dest)
        lock = self._locks.setdefault(dest, asyncio.Lock())
        async with lock, _file_lock(dest.with_name(dest.name + ".lock")):
            if (dest / ".ready").is_file():  # built by another job while we waited
                await say(f"reusing test environment {dest.name}, built by another job")
                return PythonEnv(python=python, key=key, path=dest)
            whole = Path(os.path.abspath(checkout))  # noqa: ASYNC240, PTH100 - no I/O
            await self._build(whole, dest, say, network, config)
            return PythonEnv(python=python, key=key, path=dest, built=True)

    async def _build(
        self, checkout: Path, dest: Path, say: LogFn, network: bool, config: EnvConfig
    ) -> None:
        args = install_args(checkout, config)
        shutil.rmtree(dest, ignore_errors=True)  # a build that died half-way, if any
        await say(f"building test environment {dest.name} (dependency files changed or new)")
        os.makedirs(dest)  # noqa: PTH103
        # A home of its own per build: one shared between builds would carry one PR's files
        # (a pip config, a `.pth` in a user site) into the next build.
        home = Path(tempfile.mkdtemp(prefix=".build-", dir=dest.parent))
        env = self._env(home)
        self.confinement.hand_over(dest, home)
        jail = Jail(
            cwd=home,
            writable=[dest, home],
            readonly=[checkout, *python_roots(self.config.base_python), *pip_local_paths(env)],
            network=network,
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.build_timeout_s):
                # `-I`: neither the working directory nor PYTHON* variables shape the tools,
                # so a `venv/` or `pip/` package in the checkout is never what runs.
                venv = [self.config.base_python, "-I", "-m", "venv"]
                venv += [] if args else ["--without-pip"]
                await self._step([*venv, str(dest)], env, jail, say, "creating the venv")
                if args:
                    pip = [str(dest / "bin" / "python"), "-I", "-m", "pip", "install", *args]
                    await self._step(pip, env, jail, say, "pip install")
        except TimeoutError:
            shutil.rmtree(dest, ignore_errors=True)
            raise EnvBuildError(
                f"building the test environment took over {self.config.build_timeout_s:g} s"
            ) from None
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(home, ignore_errors=True)
        info = {"built_at": time.time(), "files": [p.name for p in dependency_files(checkout)]}
        (dest / ".ready").write_text(json.dumps(info) + "\n")
        await say(f"test environment ready in {time.monotonic() - started:.1f} s")

    async def _step(
        self, argv: list[str], env: dict[str, str], jail: Jail, say: LogFn, what: str
    ) -> None:
        code = await stream_process(
            self.confinement.wrap(argv, jail), env=env, cwd=jail.cwd, on_line=say
        )
        if code != 0:
            raise EnvBuildError(f"building the test environment failed: {what} exited with {code}")

    def _env(self, home: Path) -> dict[str, str]:
        base_bin = str(Path(self.config.base_python).parent)
        env = {
            "PATH": f"{base_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home),
            "LANG": "C.UTF-8",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PIP_NO_CACHE_DIR": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        for name in self.config.pass_env:
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    def prune(self, repo: str, keep: int = 2) -> list[Path]:
        """Remove all but the `keep` most recently used environments of a repository."""
        root = self.config.cache_dir.absolute() / _slug(repo)
        if not root.is_dir():
            return []
        ready = sorted(
            (p for p in root.iterdir() if (p / ".ready").is_file()),
            key=lambda p: (p / ".ready").stat().st_mtime,
            reverse=True,
        )
        removed = []
        for path in ready[keep:]:
            lock_path = path.with_name(path.name + ".lock")
            with _try_lock(lock_path) as locked:
                if locked:  # never remove one a job is building
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
        return removed


def pip_local_paths(env: Mapping[str, str]) -> list[Path]:
    """Local folders and files pip is configured to read (a wheel folder, a file index, a CA
    bundle, a constraints file): a confined build sees these read-only, and nothing else."""
    words: list[str] = []
    for name in DEFAULT_PASS_ENV:
        words += env.get(name, "").split()
    for path in PIP_CONFIG_FILES:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            for line in path.read_text().splitlines():
                _, sep, value = line.partition("=")
                if sep:
                    words += value.split()
    found: list[Path] = []
    for word in words:
        text = word.removeprefix("file://")
        if text.startswith("/") and Path(text).exists():
            path = Path(text)
            if word.startswith("file://") and path.name == "simple" and path.is_dir():
                # A local index's pages link to its files beside `simple/` (`../files/x.whl`,
                # as `pip download` mirrors and devpi exports lay them out): the index is the
                # folder that holds both.
                path = path.parent
            found.append(path)
    return list(dict.fromkeys(found))


async def _quiet(_line: str) -> None:
    return None


def _exists(path: Path) -> bool:
    return path.exists()


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An flock held across processes: two bot processes must not build one environment twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                await asyncio.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
