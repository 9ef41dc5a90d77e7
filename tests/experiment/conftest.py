"""Tiny configurations shared by the experiment tests."""

import json
from pathlib import Path

import pytest
import torch

from experiment.data.sorting import generate_sorting_data, save_sorting_data
from experiment.models.gpt2_with_memoria import GPT2WithMemoriaConfig
from tests.experiment.tiny import TINY_GPT2, TINY_MEMORIA


@pytest.fixture
def tiny_gpt2_fields() -> dict:
    """GPT-2 fields of a tiny model: 2 layers of width 32, 16 positions, 9 token ids, no dropout."""
    return dict(TINY_GPT2)


@pytest.fixture
def tiny_memoria_config():
    """Makes a tiny Memoria Transformer configuration, with the given fields replaced."""

    def make(**overrides) -> GPT2WithMemoriaConfig:
        return GPT2WithMemoriaConfig(**{**TINY_GPT2, **TINY_MEMORIA, **overrides})

    return make


@pytest.fixture
def tiny_config_files(tmp_path: Path) -> dict:
    """JSON model configurations of a tiny Memoria Transformer and a tiny baseline, as train_sorting reads them."""
    files = {
        "memoria": {"model_type": "gpt2_with_memoria", **TINY_GPT2, **TINY_MEMORIA},
        "baseline": {"model_type": "gpt2_segment", **TINY_GPT2},
    }
    paths = {}
    for name, fields in files.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(fields))
    return paths


@pytest.fixture
def tiny_data_file(tmp_path: Path) -> Path:
    """A sorting-data file of 24 symbols from 8 (model vocabulary 9), 16 train / 8 dev / 8 test examples."""
    path = tmp_path / "sort.json"
    save_sorting_data(generate_sorting_data(24, 8, 16, 8, 8, seed=0), path)
    return path


@pytest.fixture
def tiny_segments():
    """Makes ``num_segments`` segments of token ids below 9 (the tiny models' vocabulary), each shaped
    [BatchSize, SegmentLength]."""

    def make(num_segments: int, batch_size: int = 3, length: int = 8, seed: int = 0) -> list:
        generator = torch.Generator().manual_seed(seed)
        return [torch.randint(0, 9, (batch_size, length), generator=generator) for _ in range(num_segments)]

    return make


@pytest.fixture
def seeded_logits():
    """Runs segments in order after seeding torch (Memoria's ties, sticky sampling); returns each one's logits."""

    def run(model, inputs: list, seed: int = 0) -> list:
        torch.manual_seed(seed)
        return [model(input_ids=x).logits for x in inputs]

    return run


@pytest.fixture
def seeded_model():
    """Builds ``model_class(config)`` from seed 0, in eval mode."""

    def build(model_class, config):
        torch.manual_seed(0)
        return model_class(config).eval()

    return build
