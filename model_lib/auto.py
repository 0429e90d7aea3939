"""Find a model's classes from its `model_type` or `architectures`, by folder convention.

Every package `model_lib/models/<name>/` holding `configuration_<name>.py` and
`modeling_<name>.py` is a model: its configuration module defines the config class whose
`model_type` is `<name>`, and its modeling module defines the model classes, each with a
`task` ("base", "causal-lm", "masked-lm"). There is no list to edit, so a model added by
`python -m model_lib.scaffold` is usable as soon as its files exist.

Looking up configurations imports no torch; model classes import it when first asked for.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from model_lib.configuration_utils import ConfigError, PretrainedConfig, read_config_dict

if TYPE_CHECKING:
    from model_lib.modeling_utils import PreTrainedModel

MODELS_DIR = Path(__file__).resolve().parent / "models"
_MODELS_PACKAGE = "model_lib.models"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def model_types() -> list[str]:
    """The `model_type`s of every model folder, sorted."""
    found = []
    for folder in sorted(MODELS_DIR.iterdir()):
        name = folder.name
        if (
            _NAME.match(name)
            and (folder / f"configuration_{name}.py").is_file()
            and (folder / f"modeling_{name}.py").is_file()
        ):
            found.append(name)
    return found


def _import(model_type: str, kind: str) -> ModuleType:
    if model_type not in model_types():
        raise KeyError(f"unknown model_type {model_type!r}; known: {', '.join(model_types())}")
    return importlib.import_module(f"{_MODELS_PACKAGE}.{model_type}.{kind}_{model_type}")


def _defined_in(module: ModuleType, base: type) -> list[type]:
    return [
        obj
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, base) and obj.__module__ == module.__name__
    ]


def config_class_for(model_type: str) -> type[PretrainedConfig]:
    """The config class of `model_type`."""
    module = _import(model_type, "configuration")
    matches = [c for c in _defined_in(module, PretrainedConfig) if c.model_type == model_type]
    if len(matches) != 1:
        raise LookupError(
            f"{module.__name__} must define exactly one config class with "
            f"model_type {model_type!r}, found {len(matches)}"
        )
    return matches[0]


def model_classes_for(model_type: str) -> dict[str, type[PreTrainedModel]]:
    """{task: class} of `model_type`'s models, e.g. {"base": GPT2Model, ...}."""
    from model_lib.modeling_utils import PreTrainedModel

    module = _import(model_type, "modeling")
    classes: dict[str, type[PreTrainedModel]] = {}
    for cls in _defined_in(module, PreTrainedModel):
        task = cls.__dict__.get("task")
        if task is None:
            continue
        if task in classes:
            raise LookupError(
                f"{module.__name__}: {classes[task].__name__} and {cls.__name__} "
                f"both claim task {task!r}"
            )
        classes[task] = cls
    return classes


def model_class_for_architecture(architecture: str) -> type[PreTrainedModel]:
    """The class named `architecture` (as in a config's `architectures`), in any model."""
    for model_type in model_types():
        for cls in model_classes_for(model_type).values():
            if cls.__name__ == architecture:
                return cls
    raise KeyError(f"no model class named {architecture!r}")


def _model_type_of(data: dict[str, Any], folder: str | Path) -> str:
    model_type = data.get("model_type")
    if not isinstance(model_type, str):
        raise ConfigError(f"{Path(folder) / 'config.json'} has no model_type")
    return model_type


class AutoConfig:
    """Config loading when the model type is only known from the file."""

    @staticmethod
    def from_pretrained(folder: str | Path) -> PretrainedConfig:
        data = read_config_dict(folder)
        return config_class_for(_model_type_of(data, folder)).from_dict(data)

    @staticmethod
    def for_model(model_type: str, **fields: Any) -> PretrainedConfig:
        return config_class_for(model_type).from_dict({"model_type": model_type, **fields})


class _AutoModelForTask:
    task: ClassVar[str]

    @classmethod
    def class_for(cls, model_type: str) -> type[PreTrainedModel]:
        classes = model_classes_for(model_type)
        if cls.task not in classes:
            raise KeyError(
                f"model_type {model_type!r} has no {cls.task} model; it has: "
                f"{', '.join(sorted(classes)) or 'none'}"
            )
        return classes[cls.task]

    @classmethod
    def from_config(cls, config: PretrainedConfig, **model_kwargs: Any) -> PreTrainedModel:
        return cls.class_for(config.model_type).from_config(config, **model_kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs: Any) -> PreTrainedModel:
        model_type = _model_type_of(read_config_dict(folder), folder)
        return cls.class_for(model_type).from_pretrained(folder, **kwargs)


class AutoModel(_AutoModelForTask):
    """The base model (hidden states) of whatever architecture the folder holds."""

    task = "base"


class AutoModelForCausalLM(_AutoModelForTask):
    task = "causal-lm"


class AutoModelForMaskedLM(_AutoModelForTask):
    task = "masked-lm"


def load_pretrained(folder: str | Path, **kwargs: Any) -> PreTrainedModel:
    """Load the class named first in the config's `architectures` (else the base model)."""
    data = read_config_dict(folder)
    model_type = _model_type_of(data, folder)
    architectures = data.get("architectures") or []
    if architectures:
        cls = model_class_for_architecture(architectures[0])
        if cls.config_class.model_type != model_type:
            raise ConfigError(
                f"{folder}: architecture {architectures[0]} is a "
                f"{cls.config_class.model_type} model, but model_type is {model_type!r}"
            )
    else:
        cls = AutoModel.class_for(model_type)
    return cls.from_pretrained(folder, **kwargs)
