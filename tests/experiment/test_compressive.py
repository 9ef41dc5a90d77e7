"""Compressive Transformer: the compressed memory is used and bounded, the reconstruction loss trains only the
compression, resets are exact, and the model saves and loads."""

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig, AutoModelForCausalLM

from experiment.models.compressive import (
    CompressiveTransformerConfig,
    CompressiveTransformerLMHeadModel,
    content_attention,
)

CONFIGS = Path(__file__).resolve().parents[2] / "experiment" / "configs"
VOCAB = 11
LENGTH = 8


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster than on two when the machine is loaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(**fields) -> CompressiveTransformerLMHeadModel:
    """A 2-layer, width-32 Compressive Transformer (memory 8, compressed 4, rate 4) without dropout, in eval mode."""
    torch.manual_seed(0)
    defaults = dict(
        n_layer=2, n_embd=32, n_head=4, n_inner=64, n_positions=16, vocab_size=VOCAB, mem_len=8, cmem_len=4,
        compression_rate=4, rel_pos_max_distance=64, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0,
    )  # fmt: skip
    return AutoModelForCausalLM.from_config(CompressiveTransformerConfig(**{**defaults, **fields})).eval()


def segments(num_segments: int, batch_size: int = 3, seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (batch_size, LENGTH), generator=generator) for _ in range(num_segments)]


def run(model: CompressiveTransformerLMHeadModel, stream: list) -> torch.Tensor:
    """Logits of the last segment after reading the others, shaped [BatchSize, SegmentLength, VocabSize]."""
    with torch.no_grad():
        for segment in stream[:-1]:
            model(input_ids=segment)
        return model(input_ids=stream[-1]).logits


def test_memory_overflows_into_the_compressed_memory_at_the_compression_rate():
    model = tiny_model(cmem_len=6)
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
    without = tiny_model(n_layer=1, cmem_len=0)
    torch.testing.assert_close(run(without, changed), run(copy.deepcopy(without), stream), rtol=0, atol=0)
    with_cmem = tiny_model(n_layer=1)
    assert not torch.allclose(run(with_cmem, changed), run(copy.deepcopy(with_cmem), stream))


def test_aux_loss_is_zero_until_the_memory_overflows_then_positive_and_finite():
    model = tiny_model()
    model.train()
    stream = segments(3)
    first = model(input_ids=stream[0]).aux_loss
    second = model(input_ids=stream[1]).aux_loss
    assert first.dim() == 0 and first.item() == 0.0
    assert second.dim() == 0 and second.isfinite() and second.item() > 0


def test_aux_loss_trains_only_the_compression_and_is_weighted():
    model = tiny_model(reconstruction_loss_weight=0.5)
    model.train()
    stream = segments(2)
    model(input_ids=stream[0])
    output = model(input_ids=stream[1])
    output.aux_loss.backward()
    trained = {name for name, parameter in model.named_parameters() if parameter.grad is not None}
    assert trained and all(name.startswith("transformer.compression.convs.") for name in trained)
    assert all(conv.weight.grad.abs().sum() > 0 for conv in model.transformer.compression.convs)

    unweighted = tiny_model(reconstruction_loss_weight=1.0)
    run(unweighted, stream[:1])
    with torch.no_grad():
        torch.testing.assert_close(unweighted(input_ids=stream[1]).aux_loss * 0.5, output.aux_loss.detach())


def test_the_language_model_loss_reaches_the_relative_position_bias_but_not_the_compression():
    model = tiny_model()
    model.train()
    for segment in segments(2):
        output = model(input_ids=segment)
    output.logits.sum().backward()
    bias = model.transformer.decoder.attn_layers.rel_pos.relative_attention_bias.weight
    assert bias.grad is not None and bias.grad.abs().sum() > 0
    assert all(conv.weight.grad is None for conv in model.transformer.compression.convs)


def test_an_identity_compression_reconstructs_attention_exactly():
    model = tiny_model(compression_rate=1, mem_len=4)
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


def test_reset_memory_gives_a_fresh_models_logits():
    model = tiny_model()
    fresh = copy.deepcopy(model)
    stream = segments(4)
    run(model, stream)
    model.reset_memory()
    assert model.transformer.compressed_memory.states is None
    torch.testing.assert_close(run(model, stream), run(fresh, stream), rtol=0, atol=0)


@pytest.mark.parametrize("rows", [[0, 2], torch.tensor([True, False, True])])
def test_resetting_chosen_rows_leaves_the_others_unchanged_and_refreshes_the_chosen(rows):
    model = tiny_model()
    untouched = copy.deepcopy(model)
    stream = segments(5)
    run(model, stream[:3])
    run(untouched, stream[:3])
    model.reset_memory(rows)
    reset_logits = run(model, stream[3:])
    kept_logits = run(untouched, stream[3:])
    torch.testing.assert_close(reset_logits[1], kept_logits[1], rtol=0, atol=0)
    # the reset rows now read two segments: enough to evict into, and read from, the compressed memory
    fresh_logits = run(tiny_model(), [segment[[0, 2]] for segment in stream[3:]])
    torch.testing.assert_close(reset_logits[[0, 2]], fresh_logits, rtol=1e-5, atol=1e-5)


def test_save_pretrained_and_auto_from_pretrained_give_the_same_logits(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is CompressiveTransformerLMHeadModel
    stream = segments(4)
    torch.testing.assert_close(run(loaded, stream), run(model, stream), rtol=0, atol=0)


def test_padding_is_never_attended_and_a_padded_group_is_compressed_only_when_a_slot_was_real():
    model = tiny_model()
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


def test_bad_configurations_are_rejected():
    with pytest.raises(StrictDataclassClassValidationError, match=r"mem_len \(2\) must be at least compression_rate"):
        CompressiveTransformerConfig(mem_len=2, compression_rate=4)
    with pytest.raises(StrictDataclassClassValidationError, match="cmem_len must be at least 0"):
        CompressiveTransformerConfig(cmem_len=-1)


def test_bad_input_is_rejected_with_a_clear_error():
    model = tiny_model()
    with pytest.raises(ValueError, match="vocab_size"):
        model(input_ids=torch.full((3, LENGTH), VOCAB))
    model(input_ids=segments(1)[0])
    with pytest.raises(ValueError, match="reset_memory"):
        model(input_ids=segments(1, batch_size=2)[0])


@pytest.mark.parametrize(
    "name, mem_len, cmem_len",
    [("sort", 512, 512), ("sort-small", 32, 32), ("lm", 75, 75), ("lm-small", 32, 32), ("enwik8", 256, 256)],
)
def test_configs_load_with_their_memory_sizes(name, mem_len, cmem_len):
    config = AutoConfig.from_pretrained(CONFIGS / f"compressive-{name}.json")
    assert isinstance(config, CompressiveTransformerConfig)
    assert (config.mem_len, config.cmem_len, config.compression_rate) == (mem_len, cmem_len, 4)
    fields = json.loads((CONFIGS / f"compressive-{name}.json").read_text())
    assert fields["model_type"] == "memoria_compressive_transformer"


def test_the_small_sorting_config_runs_until_its_memory_overflows():
    config = AutoConfig.from_pretrained(CONFIGS / "compressive-sort-small.json")
    model = AutoModelForCausalLM.from_config(config)
    for _ in range(2):
        output = model(input_ids=torch.zeros(2, 32, dtype=torch.long))
    assert output.logits.shape == (2, 32, 21)
    assert output.aux_loss > 0
