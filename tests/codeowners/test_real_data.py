"""The reference repository's review-owners file against every path of its tree.

The two semantics must give the same owners for every path, except the paths listed below,
where the reference script's substring search and GitHub's rules disagree.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from codeowners.lint import lint
from codeowners.owners_file import OwnersFile
from codeowners.reference import ReferenceScript, reference_lookup

_NO_TRAINER = [
    "image-classification/run_image_classification",
    "image-pretraining/run_mim",
    "instance-segmentation/run_instance_segmentation",
    "language-modeling/run_clm",
    "language-modeling/run_fim",
    "language-modeling/run_mlm",
    "multiple-choice/run_swag",
    "object-detection/run_object_detection",
    "question-answering/run_qa_beam_search",
    "question-answering/run_qa",
    "semantic-segmentation/run_semantic_segmentation",
    "speech-pretraining/run_wav2vec2_pretraining",
    "summarization/run_summarization",
    "text-classification/run_glue",
    "token-classification/run_ner",
    "translation/run_translation",
]
_DUMMIES = [
    "detectron2",
    "essentia_and_librosa_and_pretty_midi_and_scipy_and_torch",
    "flax",
    "mistral_common",
    "music",
    "pt",
    "sentencepiece_and_tokenizers",
    "sentencepiece",
    "speech",
    "tensorflow_text",
    "tf",
    "timm_and_torchvision",
    "tokenizers",
    "torchaudio",
    "torchvision",
    "vision",
]

# reason -> (pattern deciding under the reference, pattern deciding under GitHub, paths)
DIFFERENCES: dict[str, tuple[str, str, list[str]]] = {
    "`trainer.py` has no slash: GitHub matches a file named exactly trainer.py at any depth,"
    " the script finds the text anywhere, so files merely ending in trainer.py go to the"
    " trainer owners there and to the `*` fallback on GitHub": (
        "trainer.py",
        "*",
        [
            "examples/legacy/question-answering/run_squad_trainer.py",
            "examples/legacy/seq2seq/finetune_trainer.py",
            "examples/legacy/seq2seq/seq2seq_trainer.py",
            *(f"examples/pytorch/{name}_no_trainer.py" for name in _NO_TRAINER),
        ],
    ),
    "the same substring search makes `trainer.py` and `trainer_utils.py` (written later)"
    " beat `tests/` for the trainer's test files": (
        "trainer.py",
        "tests/",
        ["tests/trainer/test_trainer.py"],
    ),
    "and for `trainer_utils.py`": (
        "trainer_utils.py",
        "tests/",
        ["tests/trainer/test_trainer_utils.py"],
    ),
    "`utils/dummy*` has an inner slash, so GitHub anchors it to the root, where no"
    " utils/dummy* exists; the script finds it inside src/transformers/utils/, so the"
    " generated dummy files are unowned there and owned by the utils owners on GitHub": (
        "utils/dummy*",
        "/src/transformers/utils/",
        [f"src/transformers/utils/dummy_{name}_objects.py" for name in _DUMMIES],
    ),
}


@pytest.fixture(scope="module")
def oracle(real_owners_text: str, real_tree: list[str]) -> dict[str, tuple[int, tuple[str, ...]]]:
    lines = real_owners_text.splitlines(keepends=True)
    script = ReferenceScript(lines)
    found = {path: script.lookup(path) for path in real_tree}
    # The hoisted oracle is the script itself: check it on a sample of the tree.
    for path in real_tree[::25]:
        assert reference_lookup(lines, path) == found[path], path
    assert all(answer is not None for answer in found.values())  # `*` matches everything
    return found  # type: ignore[return-value]


def test_file_parses_without_problems(real_owners_text: str) -> None:
    owners = OwnersFile.parse(real_owners_text)
    assert len(owners.rules) == 341
    assert owners.problems == ()


def test_reference_semantics_reproduces_the_script(
    real_owners_text: str,
    real_tree: list[str],
    oracle: dict[str, tuple[int, tuple[str, ...]]],
) -> None:
    owners = OwnersFile.parse(real_owners_text, semantics="reference")
    for path in real_tree:
        rule = owners.explain(path)
        assert rule is not None
        assert (rule.line, rule.owners) == oracle[path], path


def test_github_semantics_gives_the_script_owners_except_listed_paths(
    real_owners_text: str,
    real_tree: list[str],
    oracle: dict[str, tuple[int, tuple[str, ...]]],
) -> None:
    owners = OwnersFile.parse(real_owners_text)
    lines = real_owners_text.splitlines()
    listed = {path: (ref, gh) for ref, gh, paths in DIFFERENCES.values() for path in paths}
    assert len(listed) == 37
    differing = {}
    for path in real_tree:
        rule = owners.explain(path)
        assert rule is not None
        line, expected = oracle[path]
        if rule.owners != expected:
            differing[path] = (lines[line - 1].split()[0], rule.pattern)
    assert differing == listed


def test_github_semantics_equals_the_pypi_package(
    real_owners_text: str, real_tree: list[str], pypi_codeowners: ModuleType
) -> None:
    ours = OwnersFile.parse(real_owners_text)
    peer = pypi_codeowners.CodeOwners(real_owners_text)
    for path in real_tree:
        owners, line, _, _ = peer.matching_line(path)
        rule = ours.explain(path)
        assert rule is not None
        assert (rule.line, rule.owners) == (line, tuple(o for _, o in owners)), path


def test_lint_finds_the_dead_rules(real_owners_text: str, real_tree: list[str]) -> None:
    findings = lint(OwnersFile.parse(real_owners_text), real_tree)
    assert {f.code for f in findings} == {"no-match"}
    by_line = {f.line: f.message for f in findings}
    assert len(by_line) == 60
    # A typo: the folder is `pipelines`.
    assert by_line[16] == "pattern '/src/transformers/pipeline/' matches no path in the tree"
    # Anchored by GitHub to a root folder that does not exist (see DIFFERENCES).
    assert by_line[370] == "pattern 'utils/dummy*' matches no path in the tree"
    reference = lint(OwnersFile.parse(real_owners_text, semantics="reference"), real_tree)
    assert {f.line for f in reference} == set(by_line) - {370}


def test_author_check_sees_every_owner(real_owners_text: str) -> None:
    owners = OwnersFile.parse(real_owners_text)
    assert "@ArthurZucker" in owners.owner_names
    assert "@arthurzucker" not in owners.owner_names  # the same person, written twice
    assert len(owners.owner_names) == 19
