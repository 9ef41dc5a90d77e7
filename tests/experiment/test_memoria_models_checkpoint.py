"""Memoria GPT-2, BERT and RoBERTa give, for the weights saved before they moved onto ``memoria.nn``, the logits they
gave then, to the last float32 bits (``fixtures/memoria_models_checkpoint.pt``, written by ``fixtures/make_memoria_models_
checkpoint.py`` with the hand-wired models of that time): reference and paper modes, separate memory attentions,
renormalised lifespans, the reset period, no Abstractor, dropout in training, padding, a row of padding only, and
row resets. The old parameter names load through ``load_state_dict`` and through ``from_pretrained``."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from safetensors.torch import save_file

from memoria.nn import exclude_memory
from tests.experiment.fixtures.make_memoria_models_checkpoint import CASES, MEMORIA, build, masks, run, segments

FIXTURE = Path(__file__).parent / "fixtures" / "memoria_models_checkpoint.pt"


@pytest.fixture(scope="module")
def saved():
    return torch.load(FIXTURE, weights_only=True)


def resets_of(case):
    return {int(step): rows for step, rows in case["resets"].items()}


def assert_same_logits(got, expected):
    """Equal within 4 float32 ulps of the segment's largest logit. The memory reads are now one fused kernel
    (``scaled_dot_product_attention``), which may round differently from the written-out softmax of the hand-wired
    models in the last bit; most cases are bit for bit, the others differ by at most 1 ulp. Any change in what is
    stored, reminded or read would move the logits by orders of magnitude more."""
    assert len(got) == len(expected)
    for step, (a, b) in enumerate(zip(got, expected)):
        ulps = 4 * torch.finfo(b.dtype).eps * b.abs().max().item()
        torch.testing.assert_close(a, b, rtol=0, atol=ulps, msg=f"segment {step}")


@pytest.mark.parametrize("name", list(CASES))
def test_an_old_state_dict_loads_and_gives_the_saved_logits(saved, name):
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


def continue_after(model, kind, steps=3):
    """Runs the first ``steps`` segments of the fixture's inputs; returns the logits of the next one."""
    ids, padding = segments(kind), masks(kind)
    with torch.no_grad():
        for step in range(steps):
            model(input_ids=ids[step], attention_mask=None if padding is None else padding[step])

    def next_logits(other):
        torch.manual_seed(100 + steps)  # Memoria's tie-break noise (reference mode) draws from the global generator
        with torch.no_grad():
            mask = None if padding is None else padding[steps]
            return other(input_ids=ids[steps], attention_mask=mask).logits

    return next_logits


@pytest.mark.parametrize("name", ["gpt2_reference", "bert_reference"])
def test_the_memory_travels_in_state_dict_and_memory_state_loaded_with_weights_only(saved, name, tmp_path):
    case = saved[name]
    model = build(case["kind"], json.loads(case["fields"])).eval()
    model.load_state_dict(case["state_dict"])
    next_logits = continue_after(model, case["kind"])
    torch.save({"model": model.state_dict(), "memory": model.memory_state()}, tmp_path / "checkpoint.pt")
    expected = next_logits(model)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for restore in ("state_dict", "memory_state"):
        fresh = build(case["kind"], json.loads(case["fields"])).eval()
        if restore == "state_dict":
            fresh.load_state_dict(checkpoint["model"])
        else:
            fresh.load_state_dict(case["state_dict"])
            fresh.load_memory_state(checkpoint["memory"])
        assert torch.equal(next_logits(fresh), expected), restore


@pytest.mark.parametrize("name", ["gpt2_reference", "roberta_reference"])
def test_save_pretrained_keeps_the_parameters_and_leaves_the_memory_out(saved, name, tmp_path):
    from safetensors.torch import load_file

    case = saved[name]
    model = build(case["kind"], json.loads(case["fields"])).eval()
    model.load_state_dict(case["state_dict"])
    continue_after(model, case["kind"])
    assert model.base_model.memory_rows == 3  # the memory holds something when the model is saved
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    assert not any("_extra_state" in key for key in stored)
    loaded = type(model).from_pretrained(tmp_path).eval()
    for key, value in model.state_dict().items():
        if not key.endswith("_extra_state"):
            assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.base_model.memory_rows is None  # the memory starts empty
    fresh = build(case["kind"], json.loads(case["fields"])).eval()
    fresh.load_state_dict(case["state_dict"])
    assert_same_logits(run(loaded, case["kind"], resets_of(case)), run(fresh, case["kind"], resets_of(case)))


def test_static_shapes_fields_give_the_default_paper_models_logits():
    """``memoria_static_shapes`` (with ``memoria_max_ltm_per_row`` large enough not to bind) runs Memoria's
    fixed-width path: the same engrams are reminded (padded to a fixed width, which the attention masks), so the
    logits match the default path's up to float rounding."""
    fields = dict(memoria_mode="paper", memoria_max_ltm_per_row=64)
    torch.manual_seed(0)
    default = build("gpt2", fields).eval()
    static = build("gpt2", {**fields, "memoria_static_shapes": True}).eval()
    with exclude_memory(default):
        static.load_state_dict(default.state_dict())
    for step, (a, b) in enumerate(zip(run(default, "gpt2", {3: [1]}), run(static, "gpt2", {3: [1]}))):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=f"segment {step}")
    with torch.no_grad():
        reminded = static(input_ids=segments("gpt2")[0]).reminded_indices
    assert reminded.shape[-1] == MEMORIA["memoria_num_reminded_stm"] + MEMORIA["memoria_num_reminded_ltm"]


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(memoria_static_shapes=True, memoria_mode="paper"), "memoria_max_ltm_per_row"),
        (dict(memoria_static_shapes=True, memoria_max_ltm_per_row=8), 'memoria_mode="paper"'),
        (dict(memoria_max_ltm_per_row=0), "memoria_max_ltm_per_row must be None or at least 1"),
    ],
)
def test_static_shapes_fields_are_checked(fields, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        build("gpt2", fields)
