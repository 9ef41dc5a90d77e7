"""Segment-recurrent language models: the Memoria Transformer and its memoryless GPT-2 baseline.

:func:`build_model` picks the class from the configuration's ``model_type``, so the tasks and scripts never
ask which model they have.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Type, Union

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, PretrainedConfig, PreTrainedModel
from transformers.pytorch_utils import Conv1D

from .gpt2_segment import GPT2SegmentLMHeadModel
from .gpt2_with_memoria import GPT2WithMemoriaConfig, GPT2WithMemoriaLMHeadModel
from .segment_recurrent import SegmentRecurrentModel

SEGMENT_MODELS: Dict[str, Type[PreTrainedModel]] = {
    GPT2Config.model_type: GPT2SegmentLMHeadModel,
    GPT2WithMemoriaConfig.model_type: GPT2WithMemoriaLMHeadModel,
}
CONFIGS: Dict[str, Type[PretrainedConfig]] = {
    GPT2Config.model_type: GPT2Config,
    GPT2WithMemoriaConfig.model_type: GPT2WithMemoriaConfig,
}


def load_config(path: Union[str, Path], **overrides: Any) -> PretrainedConfig:
    """Reads a model configuration JSON (with its ``model_type``), replacing the fields given in ``overrides``."""
    fields = json.loads(Path(path).read_text())
    model_type = fields.pop("model_type")
    if model_type not in CONFIGS:
        raise ValueError(f"{path}: model_type {model_type!r} is not one of {sorted(CONFIGS)}")
    return CONFIGS[model_type](**{**fields, **overrides})


def config_from_dict(fields: Dict[str, Any]) -> PretrainedConfig:
    """Rebuilds a configuration from ``PretrainedConfig.to_dict()``'s output."""
    if fields.get("model_type") not in CONFIGS:
        raise ValueError(f"model_type {fields.get('model_type')!r} is not one of {sorted(CONFIGS)}")
    return CONFIGS[fields["model_type"]].from_dict(fields)


def build_model(config: PretrainedConfig) -> PreTrainedModel:
    """A freshly initialised segment-recurrent LM for ``config`` (GPT-2 baseline or Memoria Transformer)."""
    if config.model_type not in SEGMENT_MODELS:
        raise ValueError(f"model_type {config.model_type!r} is not one of {sorted(SEGMENT_MODELS)}")
    return SEGMENT_MODELS[config.model_type](config)


@torch.no_grad()
def copy_gpt2_weights(model: nn.Module, gpt2_path: Union[str, Path]) -> List[str]:
    """Copies the weights of a local GPT-2 checkpoint into ``model`` wherever they fit.

    A parameter is copied when ``model`` has one of the same name: as is when the shapes match, transposed
    when GPT-2 keeps it in a Conv1D and ``model`` in an nn.Linear, and only the leading rows of an embedding
    table whose size differs (a smaller vocabulary or fewer positions). Everything else keeps its initial value.

    Args:
        model: the model to fill in, e.g. the Memoria Transformer or the baseline.
        gpt2_path: a directory written by ``GPT2LMHeadModel.save_pretrained``.

    Returns:
        the names of the parameters that were copied.
    """
    source = GPT2LMHeadModel.from_pretrained(gpt2_path)
    source_modules = dict(source.named_modules())
    target_modules = dict(model.named_modules())
    copied = []
    for name, target in model.named_parameters():
        module_name, _, parameter_name = name.rpartition(".")
        source_module = source_modules.get(module_name)
        if source_module is None or not hasattr(source_module, parameter_name):
            continue
        weight = getattr(source_module, parameter_name)
        target_module = target_modules[module_name]
        if isinstance(source_module, Conv1D) and isinstance(target_module, nn.Linear) and parameter_name == "weight":
            weight = weight.t()
        if isinstance(target_module, nn.Embedding) and weight.size(1) == target.size(1):
            rows = min(weight.size(0), target.size(0))
            target[:rows].copy_(weight[:rows])
        elif weight.shape == target.shape:
            target.copy_(weight)
        else:
            continue
        copied.append(name)
    return copied


__all__ = [
    "GPT2SegmentLMHeadModel",
    "GPT2WithMemoriaConfig",
    "GPT2WithMemoriaLMHeadModel",
    "SegmentRecurrentModel",
    "build_model",
    "config_from_dict",
    "copy_gpt2_weights",
    "load_config",
]
