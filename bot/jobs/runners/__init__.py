"""Where jobs execute. The job system sees only `Runner`: `run(request, on_log)` and `cancel(id)`.

`local.LocalRunner` runs pytest in a subprocess on this machine (GPU pool, cached test
environments); other runners (GitHub Actions) implement the same two coroutines. Every test
run, wherever it runs, runs `pytest_command`'s command line and ends in `verdict`'s state.
"""

from bot.jobs.runners.base import (
    MACHINE_TYPES,
    BoundedLog,
    JobError,
    JobOutcome,
    JobRequest,
    JobState,
    LogSink,
    MachineType,
    Runner,
    RunRequest,
    TokenProvider,
)
from bot.jobs.runners.envcache import EnvBuildError, EnvCache, EnvConfig, PythonEnv
from bot.jobs.runners.gpus import GpuPool, Lease, MachineUnavailable, discover_gpus
from bot.jobs.runners.junit import JUnitReport, TestResult, failed_node_ids, parse_junit, read_junit
from bot.jobs.runners.local import LocalRunner, LocalRunnerConfig
from bot.jobs.runners.pytest_command import PYTEST_ENV, pytest_argv
from bot.jobs.runners.verdict import Ending, verdict

__all__ = [
    "MACHINE_TYPES",
    "PYTEST_ENV",
    "BoundedLog",
    "Ending",
    "EnvBuildError",
    "EnvCache",
    "EnvConfig",
    "GpuPool",
    "JUnitReport",
    "JobError",
    "JobOutcome",
    "JobRequest",
    "JobState",
    "Lease",
    "LocalRunner",
    "LocalRunnerConfig",
    "LogSink",
    "MachineType",
    "MachineUnavailable",
    "PythonEnv",
    "RunRequest",
    "Runner",
    "TestResult",
    "TokenProvider",
    "discover_gpus",
    "failed_node_ids",
    "parse_junit",
    "pytest_argv",
    "read_junit",
    "verdict",
]
