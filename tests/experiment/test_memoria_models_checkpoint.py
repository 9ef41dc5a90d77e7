"""Memoria GPT-2, BERT and RoBERTa give, for the weights saved before they moved onto ``memoria.nn``, the logits they
gave then, bit for bit (``fixtures/memoria_models_checkpoint.pt``, written by ``fixtures/make_memoria_models_
checkpoint.py`` with the hand-wired models of that time): reference and paper modes, separate memory attentions,
renormalised lifespans, the reset period, no Abstractor, dropout in training, padding, a row of padding only, and
row resets. The old parameter names load through ``load_state_dict`` and through ``from_pretrained``."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.experiment.fixtures.make_memoria_models_checkpoint import CASES, build, run

FIXTURE = Path(__file__).parent / "fixtures" / "memoria_models_checkpoint.pt"


@pytest.fixture(scope="module")
def saved():
    return torch.load(FIXTURE, weights_only=True)


def resets_of(case):
    return {int(step): rows for step, rows in case["resets"].items()}


def assert_same_logits(got, expected):
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected)):
        assert torch.equal(a, b), f"segment {step}: max difference {(a - b).abs().max().item()}"


@pytest.mark.parametrize("name", list(CASES))
def test_an_old_state_dict_loads_and_gives_the_saved_logits_bit_for_bit(saved, name):
    case = saved[name]
    model = build(case["kind"], json.loads(case["fields"])).train(case["train"])
    model.load_state_dict(case["state_dict"])
    assert_same_logits(run(model, case["kind"], resets_of(case)), case["logits"])


@pytest.mark.parametrize("name", ["gpt2_paper_separate_attentions", "bert_reference", "roberta_reference"])
def test_an_old_saved_model_loads_with_from_pretrained_and_gives_the_saved_logits(saved, name, tmp_path):
    case = saved[name]
    model_class = type(build(case["kind"], json.loads(case["fields"])))
    (tmp_path / "config.json").write_text(case["config"])
    save_file({key: value.contiguous() for key, value in case["state_dict"].items()}, tmp_path / "model.safetensors")
    model = model_class.from_pretrained(tmp_path).train(case["train"])
    assert_same_logits(run(model, case["kind"], resets_of(case)), case["logits"])
