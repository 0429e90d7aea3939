"""Tests of `model_lib.scaffold`: a new model is one command and passes its tests at once."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from model_lib.scaffold import ScaffoldError, camel_case, main, scaffold, validate_name

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A throwaway copy of the parts of the repository a new model touches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(REPO_ROOT / "model_lib", tmp_path / "model_lib", ignore=ignore)
    shutil.copytree(REPO_ROOT / "tests" / "models", tmp_path / "tests" / "models", ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _run_python(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python inside the copy, importing its model_lib rather than the installed one."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), "RUN_SLOW": "no"}
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("name", ["my_model", "gpt3", "a", "mixtral_8x7b"])
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize("name", ["", "_x", "x_", "MyModel", "my-model", "3d", "class", "é"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ScaffoldError, match="invalid model name"):
        validate_name(name)


def test_camel_case() -> None:
    assert camel_case("my_model") == "MyModel"
    assert camel_case("gpt3") == "Gpt3"


def test_new_model_from_gpt2_is_renamed_registered_and_passes_its_tests(repo_copy: Path) -> None:
    created = scaffold("my_model", "gpt2", repo_copy)
    model_dir = repo_copy / "model_lib" / "models" / "my_model"
    test_file = repo_copy / "tests" / "models" / "my_model" / "test_modeling_my_model.py"
    assert set(created) == {
        model_dir / "__init__.py",
        model_dir / "configuration_my_model.py",
        model_dir / "modeling_my_model.py",
        test_file,
    }
    config_source = (model_dir / "configuration_my_model.py").read_text()
    assert "class MyModelConfig(PretrainedConfig)" in config_source
    assert 'model_type: ClassVar[str] = "my_model"' in config_source
    modeling_source = (model_dir / "modeling_my_model.py").read_text()
    assert "class MyModelLMHeadModel(MyModelPreTrainedModel, GenerationMixin)" in modeling_source
    assert "from model_lib.models.my_model.configuration_my_model import" in modeling_source
    for path in created:
        leftovers = re.findall(r"\bGPT2\w*|\bgpt2\b", path.read_text())
        assert not leftovers, f"{path.name} still names {leftovers}"

    lookup = _run_python(
        repo_copy,
        "-c",
        "from model_lib.auto import AutoModelForCausalLM, AutoConfig;"
        "c = AutoConfig.for_model('my_model', n_embd=16, n_head=2, n_layer=1, vocab_size=10);"
        "print(type(AutoModelForCausalLM.from_config(c)).__name__)",
    )
    assert lookup.returncode == 0, lookup.stderr
    assert lookup.stdout.strip() == "MyModelLMHeadModel"

    tests = _run_python(repo_copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file))
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert re.search(r"\d+ passed", tests.stdout)
    assert " failed" not in tests.stdout


@pytest.mark.parametrize(("like", "prefix"), [("llama", "Llama"), ("bert", "Bert")])
def test_other_models_rename_all_spellings(repo_copy: Path, like: str, prefix: str) -> None:
    created = scaffold("tiny_net", like, repo_copy)
    texts = {path.name: path.read_text() for path in created}
    modeling = texts["modeling_tiny_net.py"]
    assert f"{prefix}" not in re.sub(r"Hugging Face|transformers\.\w+", "", modeling)
    assert "class TinyNetConfig(PretrainedConfig)" in texts["configuration_tiny_net.py"]
    if like == "llama":
        # "llama3" names a published RoPE variant, not this model: it must survive.
        assert '"llama3"' in texts["configuration_tiny_net.py"]
    if like == "bert":
        assert 'base_model_prefix = "tiny_net"' in modeling
        assert "BERT" not in modeling
    compiled = _run_python(repo_copy, "-c", "import model_lib.models.tiny_net.modeling_tiny_net")
    assert compiled.returncode == 0, compiled.stderr


def test_errors_leave_the_tree_untouched(repo_copy: Path) -> None:
    before = sorted(p for p in repo_copy.rglob("*"))
    with pytest.raises(ScaffoldError, match="model 'llama' already exists"):
        scaffold("llama", "gpt2", repo_copy)
    with pytest.raises(ScaffoldError, match="no model 'mamba' to copy"):
        scaffold("new_model", "mamba", repo_copy)
    with pytest.raises(ScaffoldError, match="invalid model name"):
        scaffold("New", "gpt2", repo_copy)
    with pytest.raises(ScaffoldError, match="invalid model name"):
        scaffold("evil", "../gpt2", repo_copy)
    assert sorted(p for p in repo_copy.rglob("*")) == before


def test_main_reports_created_files_and_errors(
    repo_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["other_model", "--like", "bert", "--root", str(repo_copy)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert (
        str(repo_copy / "model_lib" / "models" / "other_model" / "modeling_other_model.py")
        in printed
    )
    assert main(["other_model", "--like", "bert", "--root", str(repo_copy)]) == 2
    assert "already exists" in capsys.readouterr().err
