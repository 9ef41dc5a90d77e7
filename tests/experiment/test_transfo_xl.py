"""What only Transformer-XL does: its memory is bounded by mem_len and detached, the relative-position bias learns
through it, padding before a stream is invisible, and padding needs float32 weights. The contract every model keeps
is tested in test_model_contract.py."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from experiment.models.transfo_xl import TransfoXLConfig, TransfoXLLMHeadModel

VOCAB = 11
LENGTH = 6


pytestmark = pytest.mark.usefixtures("one_thread")


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


def test_gradients_reach_the_relative_position_bias_through_the_memory():
    model = tiny_model()
    model.train()
    stream = segments(2)
    model(input_ids=stream[0])
    model(input_ids=stream[1]).logits.sum().backward()
    bias = model.transformer.decoder.attn_layers.rel_pos.relative_attention_bias.weight
    assert bias.grad is not None and bias.grad.abs().sum() > 0
    assert all(parameter.grad is not None for parameter in model.parameters())


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
