"""Shared data for the codeowners tests: the real owners file and tree, and the PyPI peer."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

import codeowners.owners_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
OWNERS_FILE = DATA_DIR / "transformers_review_codeowners.txt"
TREE_FILE = DATA_DIR / "transformers_tree.txt"


@pytest.fixture(scope="session")
def real_owners_text() -> str:
    if not OWNERS_FILE.is_file():
        pytest.skip(f"real-world data not available: {OWNERS_FILE} is absent")
    return OWNERS_FILE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def real_tree() -> list[str]:
    if not TREE_FILE.is_file():
        pytest.skip(f"real-world data not available: {TREE_FILE} is absent")
    return TREE_FILE.read_text(encoding="utf-8").split()


def load_pypi_codeowners() -> ModuleType | None:
    """The PyPI `codeowners` package, imported under another name.

    It shares its import name with this project's package, so it is kept out of
    site-packages (installed with `pip install --target .venv/peers`) and loaded by path.
    """
    candidates = []
    if os.environ.get("CODEOWNERS_PEER"):
        candidates.append(Path(os.environ["CODEOWNERS_PEER"]) / "codeowners" / "__init__.py")
    candidates.append(REPO_ROOT / ".venv" / "peers" / "codeowners" / "__init__.py")
    try:
        located = importlib.metadata.distribution("codeowners").locate_file(
            "codeowners/__init__.py"
        )
        candidates.append(Path(str(located)))
    except importlib.metadata.PackageNotFoundError:
        pass
    ours = (Path(codeowners.owners_file.__file__).parent / "__init__.py").resolve()
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() != ours:
            spec = importlib.util.spec_from_file_location("pypi_codeowners", candidate)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return None


@pytest.fixture(scope="session")
def pypi_codeowners() -> ModuleType:
    module = load_pypi_codeowners()
    if module is None:
        pytest.skip(
            "the PyPI `codeowners` package is not installed (pip install --target .venv/peers"
            " codeowners)"
        )
    return module
