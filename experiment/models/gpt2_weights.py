"""Starting an experiment model from a local GPT-2 checkpoint."""

from pathlib import Path
from typing import List, Union

import torch
from torch import nn
from transformers import GPT2LMHeadModel
from transformers.pytorch_utils import Conv1D


def _fitted(source_module: nn.Module, target_module: nn.Module, name: str, weight: torch.Tensor) -> torch.Tensor:
    """GPT-2's Conv1D weights transposed when the target keeps them in an nn.Linear."""
    if isinstance(source_module, Conv1D) and isinstance(target_module, nn.Linear) and name == "weight":
        return weight.t()
    return weight


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
    source_modules = dict(GPT2LMHeadModel.from_pretrained(gpt2_path).named_modules())
    target_modules = dict(model.named_modules())
    copied = []
    for name, target in model.named_parameters():
        module_name, _, parameter_name = name.rpartition(".")
        source_module = source_modules.get(module_name)
        if source_module is None or not hasattr(source_module, parameter_name):
            continue
        target_module = target_modules[module_name]
        weight = _fitted(source_module, target_module, parameter_name, getattr(source_module, parameter_name))
        if isinstance(target_module, nn.Embedding) and weight.size(1) == target.size(1):
            rows = min(weight.size(0), target.size(0))
            target[:rows].copy_(weight[:rows])
        elif weight.shape == target.shape:
            target.copy_(weight)
        else:
            continue
        copied.append(name)
    return copied
