"""What only Transformer-XL and the Compressive Transformer do: the memory is bounded by mem_len and detached, it
overflows into the compressed memory at the compression rate, the reconstruction loss trains only the compression,
the relative-position bias learns through the memory, padding is never attended (and compressed only where a slot was
real), padding needs float32 weights. The contract every model keeps is tested in test_model_contract.py."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM

from experiment.models.compressive import CompressiveTransformerConfig, CompressiveTransformerLMHeadModel
from experiment.models.compressive.modeling_compressive import content_attention
from experiment.models.transfo_xl import TransfoXLConfig, TransfoXLLMHeadModel

CONFIGS = Path(__file__).resolve().parents[2] / "experiment" / "configs"
VOCAB = 11
LENGTH = 8
TINY_DECODER = dict(
    n_layer=2, n_embd=32, n_head=4, n_inner=64, n_positions=16, vocab_size=VOCAB, rel_pos_max_distance=64,
    embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0,
)  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(**fields) -> TransfoXLLMHeadModel:
    """A 2-layer, width-32 Transformer-XL (memory 12) without dropout, in eval mode."""
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(TransfoXLConfig(**{**TINY_DECODER, "mem_len": 12, **fields})).eval()


def tiny_compressive(**fields) -> CompressiveTransformerLMHeadModel:
    """A 2-layer, width-32 Compressive Transformer (memory 8, compressed 4, rate 4) without dropout, in eval mode."""
    memory = dict(mem_len=8, cmem_len=4, compression_rate=4)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(CompressiveTransformerConfig(**{**TINY_DECODER, **memory, **fields})).eval()


def segments(num_segments: int, batch_size: int = 3, seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (batch_size, LENGTH), generator=generator) for _ in range(num_segments)]


def run(model: TransfoXLLMHeadModel, stream: list) -> torch.Tensor:
    """Logits of the last segment after reading the others, shaped [BatchSize, SegmentLength, VocabSize]."""
    with torch.no_grad():
        for segment in stream[:-1]:
            model(input_ids=segment)
        return model(input_ids=stream[-1]).logits


# Transformer-XL


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


# the Compressive Transformer


def test_memory_overflows_into_the_compressed_memory_at_the_compression_rate():
    model = tiny_compressive(cmem_len=6)
    lengths = []
    for segment in segments(4):
        model(input_ids=segment)
        lengths.append((model.transformer.memory.length, model.transformer.compressed_memory.length))
    # 8 new slots per segment, memory 8: the 8 oldest are compressed 4 to 1, the compressed memory keeps 6
    assert lengths == [(8, 0), (8, 2), (8, 4), (8, 6)]


def test_an_evicted_segment_reaches_later_logits_only_through_the_compressed_memory():
    # one layer: the memory holds embeddings only, so the first segment can reach the third only via cmem
    stream = segments(3)
    changed = [(stream[0] + 1) % VOCAB] + stream[1:]
    without = tiny_compressive(n_layer=1, cmem_len=0)
    torch.testing.assert_close(run(without, changed), run(copy.deepcopy(without), stream), rtol=0, atol=0)
    with_cmem = tiny_compressive(n_layer=1)
    assert not torch.allclose(run(with_cmem, changed), run(copy.deepcopy(with_cmem), stream))


def test_aux_loss_is_zero_until_the_memory_overflows_then_positive_and_finite():
    model = tiny_compressive()
    model.train()
    stream = segments(3)
    first = model(input_ids=stream[0]).aux_loss
    second = model(input_ids=stream[1]).aux_loss
    assert first.dim() == 0 and first.item() == 0.0
    assert second.dim() == 0 and second.isfinite() and second.item() > 0


def test_aux_loss_trains_only_the_compression_and_is_weighted():
    model = tiny_compressive(reconstruction_loss_weight=0.5)
    model.train()
    stream = segments(2)
    model(input_ids=stream[0])
    output = model(input_ids=stream[1])
    output.aux_loss.backward()
    trained = {name for name, parameter in model.named_parameters() if parameter.grad is not None}
    assert trained and all(name.startswith("transformer.compression.convs.") for name in trained)
    assert all(conv.weight.grad.abs().sum() > 0 for conv in model.transformer.compression.convs)

    unweighted = tiny_compressive(reconstruction_loss_weight=1.0)
    run(unweighted, stream[:1])
    with torch.no_grad():
        torch.testing.assert_close(unweighted(input_ids=stream[1]).aux_loss * 0.5, output.aux_loss.detach())


def test_the_language_model_loss_reaches_the_relative_position_bias_but_not_the_compression():
    model = tiny_compressive()
    model.train()
    for segment in segments(2):
        output = model(input_ids=segment)
    output.logits.sum().backward()
    bias = model.transformer.decoder.attn_layers.rel_pos.relative_attention_bias.weight
    assert bias.grad is not None and bias.grad.abs().sum() > 0
    assert all(conv.weight.grad is None for conv in model.transformer.compression.convs)


def test_an_identity_compression_reconstructs_attention_exactly():
    model = tiny_compressive(compression_rate=1, mem_len=4)
    with torch.no_grad():
        for conv in model.transformer.compression.convs:
            conv.weight.copy_(torch.eye(32)[:, :, None])
            conv.bias.zero_()
    stream = segments(2)
    model(input_ids=stream[0])
    assert model(input_ids=stream[1]).aux_loss.item() == pytest.approx(0.0, abs=1e-10)


def test_content_attention_matches_torch_and_is_zero_without_keys():
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 5, 8, generator=generator) for _ in range(3))
    key_mask = torch.tensor([[True, True, False, True, False], [False] * 5])
    attended = content_attention(query, key, value, key_mask)
    expected = F.scaled_dot_product_attention(query[:1], key[:1], value[:1], attn_mask=key_mask[:1, None, None, :])
    torch.testing.assert_close(attended[:1], expected)
    assert (attended[1] == 0).all()


@pytest.mark.parametrize("rows", [[0, 2], torch.tensor([True, False, True])])
def test_resetting_chosen_rows_is_exact_through_the_compressed_memory(rows):
    model = tiny_compressive()
    untouched = copy.deepcopy(model)
    stream = segments(5)
    run(model, stream[:3])
    run(untouched, stream[:3])
    model.reset_memory(rows)
    reset_logits = run(model, stream[3:])
    kept_logits = run(untouched, stream[3:])
    torch.testing.assert_close(reset_logits[1], kept_logits[1], rtol=0, atol=0)
    # the reset rows now read two segments: enough to evict into, and read from, the compressed memory
    fresh_logits = run(tiny_compressive(), [segment[[0, 2]] for segment in stream[3:]])
    torch.testing.assert_close(reset_logits[[0, 2]], fresh_logits, rtol=1e-5, atol=1e-5)


def test_padding_is_never_attended_and_a_padded_group_is_compressed_only_when_a_slot_was_real():
    model = tiny_compressive()
    mask = torch.ones(3, LENGTH, dtype=torch.long)
    mask[0, :4] = 0  # row 0: its first compression group is all padding
    mask[1, :2] = 0  # row 1: its first group is half padding
    stream = segments(2)
    with torch.no_grad():
        first = model(input_ids=stream[0], attention_mask=mask)
        model(input_ids=stream[1])
    assert first.logits.isfinite().all()
    compressed_mask = model.transformer.compressed_memory.mask
    assert compressed_mask.tolist() == [[False, True], [True, True], [True, True]]
    stored = model.transformer.memory
    assert stored.mask.all()


def test_the_small_sorting_config_runs_until_its_memory_overflows():
    config = AutoConfig.from_pretrained(CONFIGS / "compressive-sort-small.json")
    model = AutoModelForCausalLM.from_config(config)
    for _ in range(2):
        output = model(input_ids=torch.zeros(2, 32, dtype=torch.long))
    assert output.logits.shape == (2, 32, 21)
    assert output.aux_loss > 0
