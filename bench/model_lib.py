"""CPU speed and memory of the bundled models, next to Hugging Face transformers when present.

For a GPT-2-small-sized and a BERT-base-sized model with random weights (seeded), this
measures forward latency at batch 1 and batch 8 with 128-token sequences, greedy generation
throughput (decoders: 128-token prompt, 32 new tokens, KV cache), and peak resident
memory. When `transformers` is installed, its implementation loads the very same
checkpoint folder and is measured the same way; the table then shows the time ratio
(ours / theirs: at most 1.0 means no slower) and the largest difference between the two
models' logits, which must stay within 1e-4.

Peak memory is measured with each implementation loaded alone in its own process; speed in
one process holding both, the two taking turns call by call, so a burst of load from another
process on a shared machine slows both alike rather than deciding the comparison.

Speed is measured on each device of `--devices`: by default the CPU, and the GPU too when CUDA
is available (timed calls wait for the GPU's queued work to finish, before and after). Peak
memory and the logits' agreement are the CPU's.

`--json PATH` also writes this library's figures (not transformers') in github-action-
benchmark's custom format, the format `bot benchmark` and the bot's `[benchmarks]` read:
forward latency per architecture and batch in ms, generation throughput in tokens/s; the GPU's
metrics are named for it (`gpt2 forward b1x128 on GPU`), the CPU's keep their names.

    python bench/model_lib.py [--models gpt2,bert] [--repeats 3] [--threads N] [--json PATH]
                              [--devices auto|cpu|cuda|cpu,cuda]
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEQUENCE = 128
NEW_TOKENS = 32
SIZES: dict[str, dict[str, Any]] = {
    "gpt2": {
        "model_type": "gpt2",
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "vocab_size": 50257,
        "n_positions": 1024,
    },
    "bert": {
        "model_type": "bert",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "vocab_size": 30522,
        "max_position_embeddings": 512,
    },
    "llama": {
        "model_type": "llama",
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "num_key_value_heads": 4,
        "vocab_size": 32000,
        "max_position_embeddings": 1024,
    },
}
DECODERS = frozenset({"gpt2", "llama"})
#: What a device's metrics add to their names. The CPU's keep the names they had before the
#: GPU was measured too, so their history still compares.
DEVICE_NAMES = {"cpu": "", "cuda": " on GPU"}


def devices_to_measure(asked: str, cuda_available: bool) -> list[str]:
    """The devices `--devices` names: "auto" is the CPU, and the GPU when CUDA is available."""
    if asked == "auto":
        return ["cpu", "cuda"] if cuda_available else ["cpu"]
    devices = list(dict.fromkeys(d.strip() for d in asked.split(",") if d.strip()))
    unknown = [d for d in devices if d not in DEVICE_NAMES]
    if unknown or not devices:
        raise ValueError(f"unknown devices {unknown}; choose from auto, {', '.join(DEVICE_NAMES)}")
    if "cuda" in devices and not cuda_available:
        raise ValueError("cuda was asked for, but torch finds no CUDA device here")
    return devices


def synchronizer(device: str) -> Callable[[], None]:
    """What a timing waits on around a call: CUDA queues a call's kernels and returns before
    they ran, so the clock would stop early; the CPU's work is done when the call returns."""
    if device == "cpu":
        return lambda: None
    import torch

    return functools.partial(torch.cuda.synchronize, device)


def time_call(call: Callable[[], Any], synchronize: Callable[[], None]) -> float:
    """Seconds `call` takes, its device's earlier work finished first and its own waited for."""
    synchronize()
    start = time.perf_counter()
    call()
    synchronize()
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """This process's peak resident memory since it started.

    Read from /proc (VmHWM), which starts afresh with the program; `ru_maxrss` would carry
    over the parent's peak through fork and exec.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # reported in kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_checkpoint(model_name: str, folder: Path) -> None:
    import torch

    from model_lib.auto import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

    fields = dict(SIZES[model_name])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    auto = AutoModelForCausalLM if model_name in DECODERS else AutoModelForMaskedLM
    torch.manual_seed(0)
    auto.from_config(config).save_pretrained(folder)


def load(impl: str, model_name: str, folder: Path) -> Any:
    import torch

    if impl == "ours":
        from model_lib.auto import load_pretrained

        return load_pretrained(folder).eval()
    import transformers

    auto = (
        transformers.AutoModelForCausalLM
        if model_name in DECODERS
        else transformers.AutoModelForMaskedLM
    )
    model = auto.from_pretrained(folder, dtype=torch.float32).eval()
    if model_name in DECODERS:
        # Generate exactly NEW_TOKENS, like ours with eos_token_id=().
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    return model


def make_inputs(model_name: str, device: str = "cpu") -> dict[str, Any]:
    """The same token ids on every device (drawn on the CPU, then moved)."""
    import torch

    vocab = SIZES[model_name]["vocab_size"]
    generator = torch.Generator().manual_seed(1)
    return {
        b: torch.randint(0, vocab, (b, SEQUENCE), generator=generator).to(device) for b in (1, 8)
    }


def generate_fn(impl: str, model: Any, prompt: Any) -> Any:
    if impl == "ours":
        return lambda: model.generate(prompt, max_new_tokens=NEW_TOKENS, eos_token_id=())
    return lambda: model.generate(prompt, max_new_tokens=NEW_TOKENS, do_sample=False)


def memory_worker(impl: str, model_name: str, folder: Path, out: Path) -> None:
    """Load one implementation alone, run each workload once; record peak memory + outputs."""
    import torch

    baseline = peak_rss_mib()
    model = load(impl, model_name, folder)
    ids = make_inputs(model_name)
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        model(ids[1])
        outputs["logits"] = model(ids[8]).logits.float()
    if model_name in DECODERS:
        outputs["generated"] = generate_fn(impl, model, ids[1])()
    peak = peak_rss_mib()
    torch.save(outputs, out.with_suffix(".pt"))
    figures = {"peak_rss_mib": peak, "model_rss_mib": peak - baseline}
    out.with_suffix(".json").write_text(json.dumps(figures))


def timing_worker(
    impls: list[str], model_name: str, folder: Path, out: Path, repeats: int, device: str = "cpu"
) -> None:
    """Time the implementations in one process on `device`, taking turns call by call.

    Alternating means a burst of load from elsewhere on a shared machine slows both alike;
    each figure keeps the fastest call, the one least disturbed.
    """
    import torch

    models = {impl: load(impl, model_name, folder).to(device) for impl in impls}
    ids = make_inputs(model_name, device)
    synchronize = synchronizer(device)
    workloads: dict[str, dict[str, Any]] = {
        f"forward_b{batch}_s": {impl: (lambda m=m, b=b: m(b)) for impl, m in models.items()}
        for batch, b in ids.items()
    }
    if model_name in DECODERS:
        workloads["generate_s"] = {impl: generate_fn(impl, m, ids[1]) for impl, m in models.items()}
    figures: dict[str, dict[str, float]] = {impl: {} for impl in impls}
    with torch.inference_mode():
        for name, calls in workloads.items():
            times: dict[str, list[float]] = {impl: [] for impl in impls}
            for call in calls.values():
                time_call(call, synchronize)  # warm-up
            for _ in range(repeats):
                for impl, call in calls.items():
                    times[impl].append(time_call(call, synchronize))
            for impl in impls:
                figures[impl][name] = min(times[impl])
    for impl in impls:
        if "generate_s" in figures[impl]:
            figures[impl]["generate_tokens_per_s"] = NEW_TOKENS / figures[impl].pop("generate_s")
    out.with_suffix(".json").write_text(json.dumps(figures))


def run_worker(
    kind: str, impls: list[str], model_name: str, work: Path, args: Any, device: str = "cpu"
) -> Any:
    out = work / f"{model_name}-{kind}-{'-'.join(impls)}-{device}"
    command = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--impls",
        ",".join(impls),
        "--models",
        model_name,
        "--folder",
        str(work / f"{model_name}-checkpoint"),
        "--out",
        str(out),
        "--repeats",
        str(args.repeats),
        "--devices",
        device,
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        print(
            f"  {kind} run of {impls} on {model_name} ({device}) failed:\n{result.stderr[-2000:]}"
        )
        return None
    return json.loads(out.with_suffix(".json").read_text())


def has_transformers() -> bool:
    import importlib.util

    return importlib.util.find_spec("transformers") is not None


def report(
    model_name: str, ours: dict, theirs: dict | None, work: Path, device: str = "cpu"
) -> None:
    """The table of one model on one device; the CPU's also has memory and the logits' check."""
    import torch

    on = DEVICE_NAMES[device]
    print(f"\n{model_name}{on} ({SIZES[model_name]['vocab_size']} vocab, random weights, float32)")
    header = f"  {'metric':<28}{'ours':>12}{'transformers':>14}{'ratio':>8}"
    print(header)
    rows = [
        ("forward b1 x 128 (ms)", "forward_b1_s", 1000.0, False),
        ("forward b8 x 128 (ms)", "forward_b8_s", 1000.0, False),
        ("greedy generate (tokens/s)", "generate_tokens_per_s", 1.0, True),
        ("peak RSS (MiB)", "peak_rss_mib", 1.0, False),
        ("  of which model + run (MiB)", "model_rss_mib", 1.0, False),
    ]
    for label, key, scale, higher_is_better in rows:
        if key not in ours:
            continue
        mine = ours[key] * scale
        line = f"  {label:<28}{mine:>12.1f}"
        if theirs is not None and key in theirs:
            other = theirs[key] * scale
            line += f"{other:>14.1f}"
            if mine > 0 and other > 0:
                ratio = other / mine if higher_is_better else mine / other
                line += f"{ratio:>8.2f}"
        print(line)
    if theirs is None or device != "cpu":
        return
    mine_out = torch.load(work / f"{model_name}-memory-ours-cpu.pt")
    their_out = torch.load(work / f"{model_name}-memory-hf-cpu.pt")
    diff = (mine_out["logits"] - their_out["logits"]).abs().max().item()
    verdict = "ok" if diff <= 1e-4 else "TOO LARGE"
    print(f"  max |logits difference| (b8 x 128): {diff:.2e} ({verdict}, limit 1e-4)")
    if "generated" in mine_out:
        same = torch.equal(mine_out["generated"], their_out["generated"])
        print(f"  greedy tokens identical: {same}")
    print("  ratio: time ours / theirs (throughput theirs / ours); <= 1.00 means no slower")


def metrics(
    model_name: str, ours: dict[str, float], extra: str, device: str = "cpu"
) -> list[dict[str, Any]]:
    """One model's figures on one device as github-action-benchmark custom-format entries. The
    names stay fixed from run to run, since a comparison matches metrics by name."""
    on = DEVICE_NAMES[device]
    entries = [
        {
            "name": f"{model_name} forward b{batch}x{SEQUENCE}{on}",
            "unit": "ms",
            "value": ours[f"forward_b{batch}_s"] * 1000.0,
            "extra": extra,
        }
        for batch in (1, 8)
    ]
    if "generate_tokens_per_s" in ours:
        entries.append(
            {
                "name": f"{model_name} generate {SEQUENCE}+{NEW_TOKENS}{on}",
                "unit": "tokens/s",
                "value": ours["generate_tokens_per_s"],
                "extra": extra,
            }
        )
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt2,bert", help="comma-separated: gpt2,bert,llama")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="also write the figures here as custom-format JSON",
    )
    parser.add_argument(
        "--devices",
        default="auto",
        help="where to time: auto (the CPU, and the GPU when CUDA is available), cpu, cuda,"
        " or cpu,cuda",
    )
    parser.add_argument("--worker", choices=["memory", "timing"], help=argparse.SUPPRESS)
    parser.add_argument("--impls", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in SIZES]
    if unknown or not models:
        parser.error(f"unknown models {unknown}; choose from {sorted(SIZES)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    if args.worker == "memory":
        memory_worker(args.impls, models[0], args.folder, args.out)
        return 0
    if args.worker == "timing":
        timing_worker(
            args.impls.split(","), models[0], args.folder, args.out, args.repeats, args.devices
        )
        return 0

    import torch

    try:
        devices = devices_to_measure(args.devices, torch.cuda.is_available())
    except ValueError as exc:
        parser.error(str(exc))

    compare = has_transformers()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"batch 1 and 8 x {SEQUENCE} tokens; generation {SEQUENCE} + {NEW_TOKENS} tokens; "
        f"fastest of {args.repeats} calls, the libraries taking turns"
    )
    if not compare:
        print("transformers is not installed: measuring this library only")
    extras = {
        "cpu": f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads,"
        f" fastest of {args.repeats} calls"
    }
    if "cuda" in devices:
        extras["cuda"] = (
            f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__},"
            f" fastest of {args.repeats} calls"
        )
        print(f"GPU: {torch.cuda.get_device_name()}")
    found: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="model-lib-bench-") as tmp:
        work = Path(tmp)
        for model_name in models:
            folder = work / f"{model_name}-checkpoint"
            make_checkpoint(model_name, folder)
            impls = ["ours", "hf"] if compare else ["ours"]
            memory = {impl: run_worker("memory", [impl], model_name, work, args) for impl in impls}
            timing = {d: run_worker("timing", impls, model_name, work, args, d) for d in devices}
            if any(f is None for f in [*timing.values(), *memory.values()]):
                return 1
            for device in devices:
                figures = {impl: timing[device][impl] for impl in impls}
                if device == "cpu":
                    figures = {impl: {**figures[impl], **memory[impl]} for impl in impls}
                report(model_name, figures["ours"], figures.get("hf"), work, device)
                found += metrics(model_name, figures["ours"], extras[device], device)
    if args.json is not None:
        # Written only once every model was measured: a partial file would compare as
        # metrics gone missing rather than as the failed run it is.
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
