"""Parameter counts: every parameter, and those that transform tokens' hidden states (experiment.models.capacity)."""

import json
from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForCausalLM

import experiment.models  # noqa: F401  (registers the models)
from experiment.models.capacity import parameter_counts

CONFIGS = Path(__file__).resolve().parents[2] / "experiment" / "configs"


def model(name: str):
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(**json.loads((CONFIGS / f"{name}.json").read_text())))


def numel(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_the_plain_transformer_counts_all_but_its_token_and_position_tables():
    transformer = model("gpt2-sort-small")  # the output layer is the tied token table
    counts = parameter_counts(transformer)
    assert counts["parameters"] == numel(transformer)
    assert counts["token_parameters"] == numel(transformer) - numel(transformer.transformer.wte) - numel(
        transformer.transformer.wpe
    )


def test_memoria_at_the_same_width_adds_only_its_memory_attentions_query_and_output_projections():
    plain, memoria = model("gpt2-sort-small"), model("memoria-gpt2-sort-small-fullwidth")
    assert plain.config.n_inner == memoria.config.n_inner
    width, layers = plain.config.n_embd, plain.config.n_layer
    query_and_output = 2 * (width * width + width)  # q_proj and out_proj, weights and biases
    assert parameter_counts(memoria)["token_parameters"] - parameter_counts(plain)["token_parameters"] == (
        layers * query_and_output
    )
    assert parameter_counts(memoria)["parameters"] > parameter_counts(plain)["parameters"]


def test_rmt_counts_its_layers_and_final_norm_only():
    rmt = model("rmt-sort-small")
    core = rmt.rmt.core
    assert parameter_counts(rmt) == {
        "parameters": numel(rmt),
        "token_parameters": numel(core.layers) + numel(core.norm),
    }


@pytest.mark.parametrize("size", ["sort-small", "lm-small"])
def test_the_fullwidth_memoria_has_the_baselines_feed_forward_width(size):
    plain = json.loads((CONFIGS / f"gpt2-{size}.json").read_text())
    matched = json.loads((CONFIGS / f"memoria-gpt2-{size}.json").read_text())
    full = json.loads((CONFIGS / f"memoria-gpt2-{size}-fullwidth.json").read_text())
    assert full["n_inner"] == plain["n_inner"] > matched["n_inner"]
    assert {key: value for key, value in full.items() if key != "n_inner"} == {
        key: value for key, value in matched.items() if key != "n_inner"
    }
