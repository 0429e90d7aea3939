"""This repository benchmarks itself: its `bot.toml` names `bench/model_lib.py`, whose `--json`
entries are what the metrics reader accepts, with units whose better direction is known."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from bot.config import parse_repo_config
from handlers.benchmarks.compare import direction
from handlers.benchmarks.metrics import DEFAULT_LIMIT, Metric, read_metrics

ROOT = Path(__file__).resolve().parents[3]


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_model_lib", ROOT / "bench/model_lib.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # torch is imported only when measuring
    return module


def test_the_bot_toml_runs_the_model_benchmark_with_its_json_output():
    config = parse_repo_config((ROOT / ".github/bot.toml").read_text()).benchmarks
    assert config.command[:2] == ("python", "bench/model_lib.py")
    assert config.argv("/py", "/out.json")[-2:] == ["--json", "/out.json"]
    assert (config.repeats, config.threshold) == (5, 0.05)


def test_the_benchmarks_entries_read_back_as_metrics_with_a_direction():
    bench = bench_module()
    figures = {"forward_b1_s": 0.0415, "forward_b8_s": 0.25, "generate_tokens_per_s": 120.5}
    entries = bench.metrics("gpt2", figures, "CPU, 4 threads") + bench.metrics(
        "bert", {"forward_b1_s": 0.03, "forward_b8_s": 0.2}, "CPU, 4 threads"
    )
    metrics = read_metrics(json.dumps(entries).encode(), limit=DEFAULT_LIMIT)
    assert metrics == [
        Metric("gpt2 forward b1x128", "ms", 41.5),
        Metric("gpt2 forward b8x128", "ms", 250.0),
        Metric("gpt2 generate 128+32", "tokens/s", 120.5),
        Metric("bert forward b1x128", "ms", 30.0),
        Metric("bert forward b8x128", "ms", 200.0),
    ]
    directions = [direction(m.unit, m.name) for m in metrics]
    assert directions == ["lower", "lower", "higher", "lower", "lower"]
