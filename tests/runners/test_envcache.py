"""The test-environment cache: keys, install arguments, and one real (offline) build."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.jobs.runners.envcache import (
    EnvBuildError,
    EnvCache,
    EnvConfig,
    environment_key,
    install_args,
    pip_local_paths,
)

PYPROJECT = """\
[project]
name = "toy-lib"
version = "0"
dependencies = ["numpy>=1.26"]

[project.optional-dependencies]
models = ["torch==2.13.0"]
dev = ["pytest>=8", "toy_lib[models]"]

[tool.ruff]
line-length = 100
"""


def checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "checkout"
    root.mkdir(exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_key_follows_dependency_files_only(tmp_path: Path) -> None:
    root = checkout(tmp_path, {"pyproject.toml": PYPROJECT, "constraints.txt": "numpy==2.0\n"})
    config = EnvConfig(cache_dir=tmp_path / "envs")
    key = environment_key(root, config)
    (root / "README.md").write_text("docs change nothing")
    (root / "pyproject.toml").write_text(PYPROJECT.replace("line-length = 100", "line-length = 99"))
    assert environment_key(root, config) == key  # a lint setting is not a dependency
    (root / "constraints.txt").write_text("numpy==2.1\n")
    assert environment_key(root, config) != key
    (root / "constraints.txt").write_text("numpy==2.0\n")
    (root / "requirements-extra.txt").write_text("requests\n")
    assert environment_key(root, config) != key
    (root / "requirements-extra.txt").unlink()
    assert environment_key(root, config) == key
    assert environment_key(root, EnvConfig(cache_dir=tmp_path, extras=("models",))) != key


def test_install_args(tmp_path: Path) -> None:
    root = checkout(
        tmp_path,
        {"pyproject.toml": PYPROJECT, "constraints.txt": "", "requirements.txt": "safetensors\n"},
    )
    args = install_args(root, EnvConfig(extras=("dev",)))
    assert args == [
        "-c", str(root / "constraints.txt"), "-r", str(root / "requirements.txt"),
        "numpy>=1.26", "pytest>=8", "torch==2.13.0", "pytest",
    ]  # fmt: skip
    (root / "constraints.txt").unlink()
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert install_args(root, EnvConfig(packages=())) == ["-r", str(root / "requirements.txt")]
    (root / "requirements.txt").unlink()
    assert install_args(root, EnvConfig(packages=())) == []  # nothing to install: no pip at all
    with pytest.raises(EnvBuildError, match="no optional dependency group"):
        install_args(root, EnvConfig(extras=("gpu",)))
    evil = '[project]\nname = "x"\ndependencies = ["--index-url=http://evil.example/simple"]\n'
    with pytest.raises(EnvBuildError, match="not a requirement"):
        install_args(checkout(tmp_path, {"pyproject.toml": evil}), EnvConfig())


def test_every_optional_group_unless_narrowed(tmp_path: Path) -> None:
    """A repository whose tests need an optional group (torch in `models`) gets it by default."""
    root = checkout(tmp_path, {"pyproject.toml": PYPROJECT})
    every = install_args(root, EnvConfig())
    assert every == ["numpy>=1.26", "torch==2.13.0", "pytest>=8", "pytest"]
    assert install_args(root, EnvConfig(extras=None)) == every
    assert install_args(root, EnvConfig(extras=("models",))) == [
        "numpy>=1.26", "torch==2.13.0", "pytest",
    ]  # fmt: skip
    assert install_args(root, EnvConfig(extras=())) == ["numpy>=1.26", "pytest"]
    keys = {
        environment_key(root, EnvConfig(cache_dir=tmp_path, extras=extras))
        for extras in (None, ("models",), (), ("models", "dev"))
    }
    assert len(keys) == 4  # "every group" is a key of its own, even where it installs the same


async def test_ensure_takes_the_repository_extras(tmp_path: Path) -> None:
    """The run's `[slow_ci] extras` chooses the environment; the cache's own setting is the
    default only."""
    pyproject = '[project]\nname = "toy"\nversion = "0"\n[project.optional-dependencies]\nx = []\n'
    root = checkout(tmp_path, {"pyproject.toml": pyproject})
    cache = EnvCache(EnvConfig(cache_dir=tmp_path / "envs", packages=()))
    every = await cache.ensure("owner/toy", root)
    none = await cache.ensure("owner/toy", root, extras=())
    again = await cache.ensure("owner/toy", root, extras=None)
    assert every.built and none.built and not again.built
    assert every.path == again.path != none.path
    assert every.key == environment_key(root, EnvConfig(extras=None, packages=()))
    assert none.key == environment_key(root, EnvConfig(extras=(), packages=()))
    with pytest.raises(EnvBuildError, match="no optional dependency group 'gpu'"):
        await cache.ensure("owner/toy", root, extras=("gpu",))


async def test_existing_interpreter_builds_nothing(tmp_path: Path) -> None:
    cache = EnvCache(EnvConfig(cache_dir=tmp_path / "envs", python=sys.executable))
    env = await cache.ensure("o/r", checkout(tmp_path, {"pyproject.toml": PYPROJECT}))
    assert env.python == Path(sys.executable) and not env.built
    assert not (tmp_path / "envs").exists()
    with pytest.raises(EnvBuildError, match="does not exist"):
        await EnvCache(EnvConfig(python=str(tmp_path / "nope"))).ensure("o/r", tmp_path)


async def test_real_build_once_then_reuse(tmp_path: Path) -> None:
    """A toy project without dependencies: a real venv, built once even when asked twice at once."""
    root = checkout(tmp_path, {"pyproject.toml": '[project]\nname = "toy"\nversion = "0"\n'})
    cache = EnvCache(EnvConfig(cache_dir=tmp_path / "envs", packages=()))
    lines: list[str] = []

    async def log(line: str) -> None:
        lines.append(line)

    first, second = await asyncio.gather(
        cache.ensure("owner/toy", root, log), cache.ensure("owner/toy", root, log)
    )
    assert sorted([first.built, second.built]) == [False, True]
    assert first.python == second.python and first.python.is_file()
    assert first.python.parent.parent.parent.name == "owner__toy"
    done = subprocess.run(
        [str(first.python), "-c", "import sys; print(sys.prefix)"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(first.path)
    assert any("built by another job" in line for line in lines)

    again = await cache.ensure("owner/toy", root, log)
    assert (again.built, again.python) == (False, first.python)
    assert "dependency files unchanged" in lines[-1]

    (root / "requirements.txt").write_text("")  # a new dependency file: a new environment
    cache_with_req = EnvCache(EnvConfig(cache_dir=tmp_path / "envs", packages=()))
    third = await cache_with_req.ensure("owner/toy", root, log)
    assert third.built and third.path != first.path
    assert cache.prune("owner/toy", keep=1) == [first.path]
    assert not first.path.exists() and third.path.exists()  # type: ignore[union-attr]


def test_a_local_index_is_seen_with_its_files(tmp_path: Path) -> None:
    """A file index's pages link to wheels beside `simple/` (`../../files/x.whl`): a confined
    build must see the folder that holds both, and still nothing that is not configured."""
    mirror = tmp_path / "pypi"
    (mirror / "simple" / "six").mkdir(parents=True)
    (mirror / "files").mkdir()
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    env = {
        "PIP_EXTRA_INDEX_URL": f"file://{mirror / 'simple'} https://pypi.org/simple",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_INDEX_URL": f"file://{tmp_path / 'missing' / 'simple'}",
    }
    found = pip_local_paths(env)
    assert mirror in found and wheels in found
    assert tmp_path not in found and not any("missing" in str(p) for p in found)


async def test_a_build_script_the_pull_request_names_runs_confined(tmp_path: Path) -> None:
    """pip runs the build of whatever a PR's dependency files name: here a local package whose
    `setup.py` tries to read the bot's key and to write beside the bot's files. The build is
    confined: neither is there for it, and whatever it did ends with the failed build."""
    secret = tmp_path / "app.private-key.pem"
    secret.write_text("build-script-key-material\n")
    outside = tmp_path / "planted-by-the-build"
    setup = (
        "import pathlib, sys\n"
        "said = []\n"
        f"for path in ({str(secret)!r},):\n"
        "    try:\n"
        "        said.append('GOT ' + pathlib.Path(path).read_text())\n"
        "    except OSError as exc:\n"
        "        said.append(f'DENIED {path}: {exc.strerror}')\n"
        "try:\n"
        f"    pathlib.Path({str(outside)!r}).write_text('x')\n"
        "    said.append('WROTE outside')\n"
        "except OSError as exc:\n"
        "    said.append(f'REFUSED outside: {exc.strerror}')\n"
        "print('\\n'.join(said), file=sys.stderr, flush=True)\n"
        "raise SystemExit(1)\n"
    )
    root = checkout(tmp_path, {})
    (root / "evil").mkdir()
    (root / "evil" / "setup.py").write_text(setup)
    # pip resolves a relative path against its own folder, so the PR names the checkout's.
    (root / "requirements.txt").write_text(f"{root / 'evil'}\n")
    cache = EnvCache(EnvConfig(cache_dir=tmp_path / "envs", packages=()))
    lines: list[str] = []

    async def log(line: str) -> None:
        lines.append(line)

    with pytest.raises(EnvBuildError):
        await cache.ensure("owner/evil", root, log)
    text = "\n".join(lines)
    assert "build-script-key-material" not in text and "GOT " not in text
    assert not outside.exists()
    assert f"DENIED {secret}" in text and "REFUSED outside" in text, text[-2000:]
