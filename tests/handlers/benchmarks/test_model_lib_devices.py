"""`bench/model_lib.py` measures each device it is given: the CPU's metrics keep their names, the
GPU's say so, a timed call waits for the device before and after, and a timing run writes every
figure the metrics need (run here on the CPU with a tiny model)."""

from __future__ import annotations

import functools
import json

import pytest

from handlers.benchmarks.compare import direction
from handlers.benchmarks.metrics import read_metrics
from tests.handlers.benchmarks.test_this_repository import bench_module

FIGURES = {"forward_b1_s": 0.004, "forward_b8_s": 0.02, "generate_tokens_per_s": 900.0}


@pytest.fixture(scope="module")
def bench():
    return bench_module()


def test_auto_is_the_cpu_and_the_gpu_when_cuda_is_there(bench) -> None:
    assert bench.devices_to_measure("auto", cuda_available=False) == ["cpu"]
    assert bench.devices_to_measure("auto", cuda_available=True) == ["cpu", "cuda"]
    assert bench.devices_to_measure("cuda, cpu,cuda", cuda_available=True) == ["cuda", "cpu"]
    with pytest.raises(ValueError, match="no CUDA device"):
        bench.devices_to_measure("cpu,cuda", cuda_available=False)
    with pytest.raises(ValueError, match="unknown devices"):
        bench.devices_to_measure("tpu", cuda_available=True)


def test_the_gpus_metrics_are_named_for_it_and_the_cpus_keep_their_names(bench) -> None:
    entries = bench.metrics("gpt2", FIGURES, "CPU", "cpu") + bench.metrics(
        "gpt2", FIGURES, "GPU H100", "cuda"
    )
    metrics = read_metrics(json.dumps(entries).encode())  # the reader refuses a name twice
    assert [m.name for m in metrics] == [
        "gpt2 forward b1x128",
        "gpt2 forward b8x128",
        "gpt2 generate 128+32",
        "gpt2 forward b1x128 on GPU",
        "gpt2 forward b8x128 on GPU",
        "gpt2 generate 128+32 on GPU",
    ]
    assert [direction(m.unit, m.name) for m in metrics] == ["lower", "lower", "higher"] * 2
    assert {e["extra"] for e in entries[3:]} == {"GPU H100"}


def test_a_timed_call_waits_for_its_device_before_and_after(bench) -> None:
    happened: list[str] = []
    took = bench.time_call(lambda: happened.append("call"), lambda: happened.append("sync"))
    assert happened == ["sync", "call", "sync"] and took >= 0
    assert bench.synchronizer("cpu")() is None
    torch = pytest.importorskip("torch")
    cuda = bench.synchronizer("cuda")
    assert isinstance(cuda, functools.partial)
    assert (cuda.func, cuda.args) == (torch.cuda.synchronize, ("cuda",))


def test_a_timing_run_on_the_cpu_writes_each_figure(bench, tmp_path, monkeypatch) -> None:
    pytest.importorskip("torch")
    tiny = {**bench.SIZES["gpt2"], "n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 97}
    monkeypatch.setitem(bench.SIZES, "gpt2", tiny)
    folder = tmp_path / "checkpoint"
    bench.make_checkpoint("gpt2", folder)
    bench.timing_worker(["ours"], "gpt2", folder, tmp_path / "timing", 2, "cpu")
    figures = json.loads((tmp_path / "timing.json").read_text())["ours"]
    assert set(figures) == {"forward_b1_s", "forward_b8_s", "generate_tokens_per_s"}
    assert all(value > 0 for value in figures.values())
    entries = bench.metrics("gpt2", figures, "CPU", "cpu")
    assert len(read_metrics(json.dumps(entries).encode())) == 3


def test_asking_for_cuda_where_there_is_none_is_refused(bench, capsys) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as stopped:
        bench.main(["--models", "gpt2", "--devices", "cuda"])
    assert stopped.value.code == 2 and "no CUDA device" in capsys.readouterr().err
