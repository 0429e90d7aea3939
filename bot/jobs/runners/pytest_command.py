"""The one pytest command line a test job runs, wherever it runs.

The local runner builds it here, the stand-in's Actions runs it, and `.github/workflows/
slow-tests.yml` writes it in shell; a test reads the workflow and fails when the two drift, so
that a job gives the same result on either runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

#: What the tests need from their environment besides an interpreter: `RUN_SLOW` turns on the
#: slow tests a job exists for (`model_lib.testing.slow`).
PYTEST_ENV: Mapping[str, str] = MappingProxyType({"RUN_SLOW": "yes"})


def pytest_argv(
    python: str | Path,
    junit_path: str | Path,
    targets: Sequence[str],
    extra: Sequence[str] = (),
) -> list[str]:
    """pytest on `targets` (a folder or node ids) with `python`, its report at `junit_path`.

    `-v` prints a line per test, which the live log and `run-slow`'s progress read; `-rsfE`
    ends with the skips, failures and errors summed up for the log's tail; the JUnit report is
    what the verdict reads. Without the cache provider a job leaves nothing in its checkout. `--`
    ends the options, so a target is only ever a path; `extra` (options an operator adds) goes
    before it.
    """
    return [
        str(python), "-m", "pytest", "-v", "-rsfE", f"--junitxml={junit_path}",
        "-p", "no:cacheprovider", *extra, "--", *targets,
    ]  # fmt: skip
