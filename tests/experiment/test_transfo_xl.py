"""Transformer-XL baseline: the memory is used, bounded, reset exactly (all rows or chosen rows), saved and loaded."""

import copy
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig, AutoModelForCausalLM

from experiment.models.transfo_xl import TransfoXLConfig, TransfoXLLMHeadModel

CONFIGS = Path(__file__).resolve().parents[2] / "experiment" / "configs"
VOCAB = 11
LENGTH = 6


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster than on two when the machine is loaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(**fields) -> TransfoXLLMHeadModel:
    """A 2-layer, width-32 Transformer-XL without dropout, in eval mode."""
    torch.manual_seed(0)
    defaults = dict(
        n_layer=2, n_embd=32, n_head=4, n_inner=64, n_positions=16, vocab_size=VOCAB, mem_len=12,
        rel_pos_max_distance=64, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0,
    )  # fmt: skip
    return AutoModelForCausalLM.from_config(TransfoXLConfig(**{**defaults, **fields})).eval()


def segments(num_segments: int, batch_size: int = 3, seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (batch_size, LENGTH), generator=generator) for _ in range(num_segments)]


def run(model: TransfoXLLMHeadModel, stream: list) -> torch.Tensor:
    """Logits of the last segment after reading the others, shaped [BatchSize, SegmentLength, VocabSize]."""
    with torch.no_grad():
        for segment in stream[:-1]:
            model(input_ids=segment)
        return model(input_ids=stream[-1]).logits


def test_auto_classes_build_it_and_the_output_has_logits_and_no_aux_loss():
    model = tiny_model()
    assert isinstance(model, TransfoXLLMHeadModel)
    output = model(input_ids=segments(1)[0])
    assert output.logits.shape == (3, LENGTH, VOCAB)
    assert output.aux_loss is None


def test_changing_an_earlier_segment_changes_a_later_segments_logits():
    model = tiny_model()
    stream = segments(3)
    changed = [(stream[0] + 1) % VOCAB] + stream[1:]
    first = run(model, stream)
    model.reset_memory()
    assert not torch.allclose(first, run(model, changed))


def test_a_one_layer_model_forgets_what_left_its_memory():
    # one layer: the memory holds embeddings only, so a segment older than mem_len cannot reach the logits
    model = tiny_model(n_layer=1, mem_len=LENGTH)
    stream = segments(3)
    changed = [(stream[0] + 1) % VOCAB] + stream[1:]
    first = run(model, stream)
    model.reset_memory()
    torch.testing.assert_close(run(model, changed), first, rtol=0, atol=0)


def test_the_memory_holds_at_most_mem_len_slots_and_is_detached():
    model = tiny_model(mem_len=8)
    model.train()
    for segment in segments(3):
        model(input_ids=segment)
    memory = model.transformer.memory
    assert memory.states.shape == (2, 3, 8, 32)
    assert not memory.states.requires_grad


def test_reset_memory_gives_a_fresh_models_logits():
    model = tiny_model()
    fresh = copy.deepcopy(model)
    stream = segments(3)
    run(model, stream)
    model.reset_memory()
    torch.testing.assert_close(run(model, stream), run(fresh, stream), rtol=0, atol=0)


@pytest.mark.parametrize("rows", [[1], torch.tensor([1]), torch.tensor([False, True, False])])
def test_resetting_chosen_rows_leaves_the_others_unchanged_and_refreshes_the_chosen(rows):
    model = tiny_model()
    untouched = copy.deepcopy(model)
    stream = segments(3)
    run(model, stream[:2])
    run(untouched, stream[:2])
    model.reset_memory(rows)
    reset_logits = run(model, stream[2:])
    kept_logits = run(untouched, stream[2:])
    torch.testing.assert_close(reset_logits[[0, 2]], kept_logits[[0, 2]], rtol=0, atol=0)
    fresh_logits = run(tiny_model(), [stream[2][1:2]])
    torch.testing.assert_close(reset_logits[1:2], fresh_logits, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(reset_logits[1], kept_logits[1])


def test_gradients_reach_the_relative_position_bias_through_the_memory():
    model = tiny_model()
    model.train()
    stream = segments(2)
    model(input_ids=stream[0])
    model(input_ids=stream[1]).logits.sum().backward()
    bias = model.transformer.decoder.attn_layers.rel_pos.relative_attention_bias.weight
    assert bias.grad is not None and bias.grad.abs().sum() > 0
    assert all(parameter.grad is not None for parameter in model.parameters())


def test_save_pretrained_and_auto_from_pretrained_give_the_same_logits(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is TransfoXLLMHeadModel
    stream = segments(3)
    torch.testing.assert_close(run(loaded, stream), run(model, stream), rtol=0, atol=0)


def test_left_padding_is_invisible_to_the_real_tokens():
    # padding before a row's stream takes memory slots but is never attended to, and relative distances between
    # real tokens are unchanged, so the padded row scores its real tokens as the unpadded stream does
    model = tiny_model(mem_len=32)
    stream = segments(2, batch_size=1)
    padded = [torch.cat([torch.zeros(1, 2, dtype=torch.long), stream[0][:, :-2]], dim=1), stream[1]]
    tail = stream[0][:, -2:]
    mask = torch.ones(1, LENGTH, dtype=torch.long)
    mask[:, :2] = 0
    with torch.no_grad():
        first = model(input_ids=padded[0], attention_mask=mask).logits
        second = model(input_ids=torch.cat([tail, padded[1]], dim=1)[:, :LENGTH]).logits
        model.reset_memory()
        expected_first = model(input_ids=stream[0][:, :-2]).logits
        expected_second = model(input_ids=torch.cat([tail, stream[1]], dim=1)[:, :LENGTH]).logits
    assert first.isfinite().all()
    torch.testing.assert_close(first[:, 2:], expected_first, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(second, expected_second, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "input_ids, attention_mask, message",
    [
        (torch.zeros(3, LENGTH), None, "integer tensor shaped"),
        (torch.zeros(LENGTH, dtype=torch.long), None, "integer tensor shaped"),
        (torch.full((3, LENGTH), VOCAB), None, "vocab_size"),
        (torch.zeros(3, 17, dtype=torch.long), None, "n_positions"),
        (torch.zeros(3, LENGTH, dtype=torch.long), torch.ones(3, LENGTH + 1), "attention_mask must be shaped"),
        (torch.zeros(3, LENGTH, dtype=torch.long), torch.full((3, LENGTH), 2), "only 0 and 1"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(input_ids, attention_mask, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(input_ids=input_ids, attention_mask=attention_mask)


def test_padding_in_a_model_cast_to_bfloat16_is_rejected_but_autocast_takes_it():
    model = tiny_model()
    mask = torch.ones(3, LENGTH, dtype=torch.long)
    mask[0, 0] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(input_ids=segments(1)[0], attention_mask=mask).logits.isfinite().all()
    model.reset_memory()
    model.to(torch.bfloat16)
    assert model(input_ids=segments(1)[0]).logits.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="use torch.autocast"):
        model(input_ids=segments(1)[0], attention_mask=mask)


def test_a_batch_of_another_size_needs_a_full_reset_and_bad_rows_are_rejected():
    model = tiny_model()
    model(input_ids=segments(1)[0])
    with pytest.raises(ValueError, match="reset_memory"):
        model(input_ids=segments(1, batch_size=2)[0])
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        model.reset_memory([3])
    with pytest.raises(ValueError, match="bool mask must be shaped"):
        model.reset_memory(torch.tensor([True, False]))
    model.reset_memory(torch.tensor([True, True, True]))
    assert model(input_ids=segments(1, batch_size=2)[0]).logits.shape == (2, LENGTH, VOCAB)


@pytest.mark.parametrize(
    "name, mem_len", [("sort", 1024), ("sort-small", 64), ("lm", 150), ("lm-small", 64), ("enwik8", 512)]
)
def test_configs_load_with_their_memory_length(name, mem_len):
    config = AutoConfig.from_pretrained(CONFIGS / f"transfo-xl-{name}.json")
    assert isinstance(config, TransfoXLConfig)
    assert config.mem_len == mem_len
    assert json.loads((CONFIGS / f"transfo-xl-{name}.json").read_text())["model_type"] == "memoria_transfo_xl"


def test_bad_configurations_are_rejected():
    with pytest.raises(StrictDataclassClassValidationError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        TransfoXLConfig(n_embd=30, n_head=4)
    with pytest.raises(StrictDataclassClassValidationError, match="mem_len must be at least 0"):
        TransfoXLConfig(mem_len=-1)


def test_the_small_sorting_config_runs_a_segment():
    config = AutoConfig.from_pretrained(CONFIGS / "transfo-xl-sort-small.json")
    model = AutoModelForCausalLM.from_config(config)
    assert model(input_ids=torch.zeros(2, 32, dtype=torch.long)).logits.shape == (2, 32, 21)
