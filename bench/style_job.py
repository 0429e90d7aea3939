"""`/style` job wall time on a 200-file pull request, against bare ruff on the same files.

The base branch holds 200 of this repository's own Python files (and its `pyproject.toml`, so
its ruff rules); the pull request mangles each lightly (2-space indentation, an unused import
at the top), which `ruff check --fix` and `ruff format` undo. One style job runs on the style
runner exactly as the server's would (clean checkout from the sandbox's bare repository, the
base configuration read through git, ruff, one commit pushed with a lease), split into fetch /
ruff / commit + push; then the same two ruff commands run by hand on a plain copy of the same
files. The difference is the bot's overhead (target: at most 1 s).

    python bench/style_job.py [--files 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.style.plan import ruff_settings, toml_text  # noqa: E402
from handlers.style.runner import StyleRequest, StyleRunner, StyleRunnerConfig  # noqa: E402
from tests.sandbox import SandboxGitHub  # noqa: E402

REPO = "acme/bench"


def sources(count: int) -> dict[str, str]:
    """`count` of this repository's Python files, by their own paths."""
    files = sorted(
        p
        for folder in ("bot", "handlers", "codeowners", "tests", "bench", "model_lib")
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts
    )
    out: dict[str, str] = {}
    copy = 0
    while len(out) < count:  # fewer files than asked: a second copy under copy-2/, and so on
        prefix = f"copy-{copy}/" if copy else ""
        for path in files[: count - len(out)]:
            out[prefix + str(path.relative_to(ROOT))] = path.read_text()
        copy += 1
    return out


def mangle(text: str) -> str:
    """Still valid Python, but not ruff's: 2-space indentation and an unused import."""
    lines = []
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        lines.append(" " * (indent // 2) + stripped if indent % 4 == 0 else line)
    return "import os as _unused_os\n" + "".join(lines)


def by_hand(work: Path, files: dict[str, str], config: str) -> float:
    """`ruff check --fix` then `ruff format` on a plain copy: what the job is measured against."""
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    (work / "ruff-base.toml").write_text(config)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work)}
    ruff = [sys.executable, "-m", "ruff"]
    common = ["--config", str(work / "ruff-base.toml"), "--no-cache", *files]
    started = time.perf_counter()
    subprocess.run([*ruff, "check", "--fix", *common], cwd=work, env=env, capture_output=True)
    subprocess.run([*ruff, "format", *common], cwd=work, env=env, capture_output=True)
    return time.perf_counter() - started


async def one_job(tmp: Path, count: int, round_no: int) -> tuple[dict[str, float], float, float]:
    github = SandboxGitHub(tmp / f"github-{round_no}")
    base_files = sources(count)
    github.create_repo(REPO, files={"pyproject.toml": (ROOT / "pyproject.toml").read_text()})
    github.commit(REPO, "main", base_files, author="base")
    mangled = {name: mangle(text) for name, text in base_files.items()}
    head = github.commit(REPO, "mangled", mangled, author="carol")
    git = github.git(REPO)
    url = str(git.path)
    runner = StyleRunner(StyleRunnerConfig(work_dir=tmp / f"jobs-{round_no}"))
    request = StyleRequest(
        job_id=f"bench-{round_no}",
        run_id=str(round_no),
        repo=REPO,
        head_clone_url=url,
        head_ref="mangled",
        head_sha=head,
        base_clone_url=url,
        base_sha=git.resolve("main"),
        files=tuple(mangled),
    )
    started = time.perf_counter()
    outcome = await runner.run(request)
    total = time.perf_counter() - started
    result = outcome.result or {}
    if result.get("outcome") != "pushed":
        raise SystemExit(f"the job did not push: {result.get('outcome')}: {outcome.reason}")
    config = toml_text(ruff_settings({"pyproject.toml": (ROOT / "pyproject.toml").read_text()}))
    hand = by_hand(tmp / f"by-hand-{round_no}", mangled, config)
    shutil.rmtree(tmp / f"github-{round_no}", ignore_errors=True)
    fixed = len(result.get("files_fixed", ()))
    print(
        f"round {round_no}: job {total:.3f} s ({fixed} files fixed;"
        + "".join(f" {k} {v:.3f} s," for k, v in outcome.timings.items()).rstrip(",")
        + f"), by hand {hand:.3f} s"
    )
    return dict(outcome.timings), total, hand


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-style-") as tmp:
        rounds = [await one_job(Path(tmp), args.files, i + 1) for i in range(args.repeat)]
    med = statistics.median
    total = med(r[1] for r in rounds)
    hand = med(r[2] for r in rounds)
    phases = {k: med(r[0].get(k, 0.0) for r in rounds) for k in ("fetch", "ruff", "commit_push")}
    print()
    print(f"style job on {args.files} files (median of {args.repeat}): {total:.3f} s")
    print("  " + ", ".join(f"{k} {v:.3f} s" for k, v in phases.items()))
    print(f"ruff check --fix + ruff format by hand: {hand:.3f} s")
    overhead = total - hand
    verdict = "within" if overhead <= 1.0 else "OVER"
    print(f"overhead {overhead:.3f} s ({verdict} the 1 s target); ratio {total / hand:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
