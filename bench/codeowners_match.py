"""Owners for every path of a large tree: this library, the reference algorithm, and PyPI's
`codeowners` package, side by side in one run.

Two data sets: the reference repository's review-owners file (341 rules) with its 5,341-path
tree, from `../shared/data/`; and a 50,000-path tree with a 1,000-rule file generated from them
(seeded, so every run measures the same data): new models shaped like the real ones, with
owner rules shaped like the real rules.

For each implementation the clock covers everything a pull request touching every file would
wait for: reading the owners text, compiling it, and answering every path. The reference
algorithm is too slow for whole trees, so it answers an evenly spread sample for a time budget.
Answers are compared path by path (deciding line and owners): this library against the PyPI
package under GitHub's semantics, and against the reference algorithm under its semantics.

    python bench/codeowners_match.py [--repeat 3] [--budget 3] [--seed 1]

The PyPI package has the same import name as this project's package, so it is loaded by path
from `.venv/peers` (`pip install --target .venv/peers codeowners`) or from `$CODEOWNERS_PEER`.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codeowners.owners_file import OwnersFile  # noqa: E402
from codeowners.reference import ReferenceScript, reference_lookup  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
Answer = tuple[int, tuple[str, ...]] | None


@dataclass
class Row:
    name: str
    paths: int
    seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.paths / self.seconds


def load_peer() -> tuple[ModuleType | None, str]:
    candidates = []
    if os.environ.get("CODEOWNERS_PEER"):
        candidates.append(Path(os.environ["CODEOWNERS_PEER"]))
    candidates.append(ROOT / ".venv" / "peers")
    for base in candidates:
        init = base / "codeowners" / "__init__.py"
        if not init.is_file():
            continue
        spec = importlib.util.spec_from_file_location("pypi_codeowners", init)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        versions = sorted(base.glob("codeowners-*.dist-info"))
        version = versions[-1].name.removeprefix("codeowners-").removesuffix(".dist-info")
        return module, version if versions else "?"
    return None, ""


# --------------------------------------------------------------------------- generated data

_SUFFIXES = ["v2", "v3", "next", "lite", "xl", "moe", "audio", "vision", "text", "omni", "mini"]
_LANGUAGES = ["en", "ja", "ko", "zh", "fr", "de", "es", "it", "pt", "hi", "ar", "tr"]


def generate(
    tree: list[str], rules_text: str, *, paths: int, rules: int, seed: int
) -> tuple[list[str], str]:
    """A bigger repository grown the way the real one grows: more models, more model owners."""
    rng = random.Random(seed)
    real_models = sorted(
        {
            p.split("/")[3]
            for p in tree
            if p.startswith("src/transformers/models/") and "/" in p[24:]
        }
    )
    templates: dict[str, list[str]] = {}
    for model in real_models:
        shape = []
        for p in tree:
            if f"/models/{model}/" in p or p.endswith(f"/model_doc/{model}.md"):
                folder, _, name = p.rpartition("/")
                folder = folder.replace(f"/models/{model}", "/models/{m}")
                shape.append(f"{folder}/{name.replace(model, '{m}')}")
        if len(shape) >= 4:
            templates[model] = shape
    out = set(tree)
    added: list[str] = []
    new_models: list[str] = []
    taken = set(real_models)
    while len(out) < paths:
        base = rng.choice(real_models)
        name = f"{base}_{rng.choice(_SUFFIXES)}{rng.randint(2, 99)}"
        if name in taken:
            continue
        taken.add(name)
        new_models.append(name)
        shape = templates[rng.choice(sorted(templates))]
        for path in shape:
            if "/model_doc/" in path:
                lang = rng.choice(_LANGUAGES)
                path = f"docs/source/{lang}/model_doc/{{m}}.md"
            path = path.replace("{m}", name)
            if path not in out:
                out.add(path)
                added.append(path)
    grown = sorted(tree + added[: max(0, paths - len(tree))])

    lines = rules_text.splitlines()
    split = next(i for i, line in enumerate(lines) if line.startswith("# Owners of individual"))
    tail = next(i for i, line in enumerate(lines) if line.startswith("# Finally"))
    owners = sorted({w for line in lines for w in line.split("#")[0].split()[1:]})
    owners += ["@huggingface/core", "@huggingface/vision-team", "models@huggingface.co"]
    have = sum(1 for line in lines if line.split("#")[0].strip())
    general: list[str] = []
    specific: list[str] = []
    unowned: list[str] = []
    fragments = ["image_processing", "feature_extraction", "processing", "convert", "fast"]
    exts = ["ipynb", "yml", "json", "cu", "cpp", "sh", "toml", "rst"]
    dirs = ["fixtures", "legacy", "kernels", "onnx", "research_projects", "templates"]
    while have + len(general) + len(specific) + len(unowned) < rules:
        kind = rng.random()
        model = rng.choice(new_models)
        who = " ".join(rng.sample(owners, rng.randint(1, 2)))
        if kind < 0.62:
            specific.append(f"/src/transformers/models/{model}/mod*_{model}* {who}")
        elif kind < 0.70:
            specific.append(f"/tests/models/{model}/ {who}")
        elif kind < 0.78:
            specific.append(f"docs/source/en/model_doc/{model}.md {who}")
        elif kind < 0.83:
            specific.append(f"/src/transformers/models/{model}/* {who}")
        elif kind < 0.87:
            specific.append(f"/src/transformers/models/{model}/ {who}")
        elif kind < 0.91:
            unowned.append(f"/src/transformers/models/{model}/convert_*")
        else:
            general.append(
                rng.choice(
                    [
                        f"*{rng.choice(fragments)}* {who}",
                        f"*.{rng.choice(exts)} {who}",
                        f"**/{rng.choice(dirs)}/ {who}",
                        f"/src/transformers/models/*/{rng.choice(fragments)}* {who}",
                        f"{rng.choice(['trainer', 'pipeline'])}_{rng.randint(1, 9)}.py {who}",
                    ]
                )
            )
    text = "\n".join(
        [
            *lines[:split],
            "# Generated general rules",
            *general,
            *lines[split:tail],
            "# Generated model rules",
            *specific,
            *lines[tail:],
            *unowned,
        ]
    )
    return grown, text + "\n"


# --------------------------------------------------------------------------- measurements


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(text: str, tree: list[str], semantics: str) -> list[Answer]:
    owners = OwnersFile.parse(text, semantics=semantics)  # type: ignore[arg-type]
    out: list[Answer] = []
    for path in tree:
        rule = owners.explain(path)
        out.append((rule.line, rule.owners) if rule else None)
    return out


def peer_answers(peer: ModuleType, text: str, tree: list[str]) -> list[Answer]:
    owners = peer.CodeOwners(text)
    out: list[Answer] = []
    for path in tree:
        found, line, _, _ = owners.matching_line(path)
        out.append((line, tuple(o for _, o in found)) if line is not None else None)
    return out


def measure(
    label: str,
    text: str,
    tree: list[str],
    peer: ModuleType | None,
    version: str,
    repeat: int,
    budget: float,
) -> None:
    rule_count = len(OwnersFile.parse(text).rules)
    print(f"\n{label}: {len(tree):,} paths, {rule_count:,} rules")
    rows: list[Row] = []

    answers: dict[str, list[Answer]] = {}
    seconds = best_of(repeat, lambda: answers.__setitem__("github", ours(text, tree, "github")))
    compile_s = best_of(repeat, lambda: OwnersFile.parse(text))
    matching = len(tree) / max(seconds - compile_s, 1e-9)
    rows.append(
        Row(
            "this library (GitHub semantics)",
            len(tree),
            seconds,
            f"compile {compile_s * 1e3:.1f} ms, then {matching:,.0f} paths/s",
        )
    )

    peer_rows_at = len(rows)
    if peer is not None:
        seconds = best_of(
            repeat, lambda: answers.__setitem__("peer", peer_answers(peer, text, tree))
        )
        rows.append(Row(f"PyPI codeowners {version}", len(tree), seconds))

    seconds = best_of(
        repeat, lambda: answers.__setitem__("ours-ref", ours(text, tree, "reference"))
    )
    rows.append(Row("this library (reference semantics)", len(tree), seconds))

    lines = text.splitlines(keepends=True)
    step = max(1, len(tree) // 2000)
    sample = tree[::step]
    reference: list[Answer] = []
    start = time.perf_counter()
    for path in sample:
        reference.append(reference_lookup(lines, path))
        if time.perf_counter() - start > budget:
            break
    seconds = time.perf_counter() - start
    rows.append(
        Row(
            "reference algorithm",
            len(reference),
            seconds,
            f"sample of {len(reference):,} paths, every-path time extrapolated",
        )
    )

    base = rows[peer_rows_at].rate if peer is not None else None
    print(f"  {'implementation':38} {'paths/s':>12} {'every path':>12} {'vs PyPI':>9}  note")
    for row in rows:
        every = len(tree) / row.rate
        ratio = f"{row.rate / base:8.1f}x" if base else "        -"
        print(f"  {row.name:38} {row.rate:12,.0f} {every:11.3f}s {ratio}  {row.note}")

    if peer is not None:
        same = sum(a == b for a, b in zip(answers["github"], answers["peer"], strict=True))
        print(f"  GitHub semantics vs PyPI package: {same:,} of {len(tree):,} paths identical")
    mine = answers["ours-ref"][::step]
    same = sum(a == b for a, b in zip(mine, reference, strict=False))
    print(f"  reference semantics vs reference algorithm: {same:,} of {len(reference):,} identical")
    script = ReferenceScript(lines)
    oracle = [script.lookup(path) for path in sample]
    same = sum(a == b for a, b in zip(mine, oracle, strict=True))
    print(
        f"  reference semantics vs the same algorithm with each line's regex built once:"
        f" {same:,} of {len(sample):,} identical"
    )
    differ = sum(
        (a[1] if a else ()) != (b[1] if b else ())
        for a, b in zip(answers["github"], answers["ours-ref"], strict=True)
    )
    print(f"  paths whose owners differ between the two semantics: {differ:,}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds for the reference")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data set")
    parser.add_argument("--paths", type=int, default=50_000, help="paths of the generated tree")
    parser.add_argument("--rules", type=int, default=1_000, help="rules of the generated file")
    args = parser.parse_args()
    if args.repeat < 1 or args.budget <= 0 or args.paths < 1 or args.rules < 1:
        parser.error("--repeat, --budget, --paths and --rules must be positive")

    owners_file = DATA / "transformers_review_codeowners.txt"
    tree_file = DATA / "transformers_tree.txt"
    if not owners_file.is_file() or not tree_file.is_file():
        print(f"skipped: the real-world data is not available in {DATA}")
        return 0
    text = owners_file.read_text(encoding="utf-8")
    tree = tree_file.read_text(encoding="utf-8").split()
    peer, version = load_peer()
    if peer is None:
        print("note: PyPI `codeowners` not found (pip install --target .venv/peers codeowners)")
    print(
        f"python {sys.version.split()[0]}, best of {args.repeat} runs, load average"
        f" {statistics.fmean(os.getloadavg()):.2f}"
    )

    measure("reference repository", text, tree, peer, version, args.repeat, args.budget)
    big_tree, big_text = generate(tree, text, paths=args.paths, rules=args.rules, seed=args.seed)
    measure(
        f"generated (seed {args.seed})", big_text, big_tree, peer, version, args.repeat, args.budget
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
