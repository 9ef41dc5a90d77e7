"""What only the Memoria Transformer does: the memory without an Abstractor, gradients to the Abstractor and the
memory cross-attention, one shared cross-attention, the two lifespan rules, starting from GPT-2's weights. The
contract every model keeps is tested in test_model_contract.py."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from experiment.models.gpt2_segment import GPT2SegmentConfig, GPT2SegmentLMHeadModel
from experiment.models.gpt2_weights import copy_gpt2_weights
from experiment.models.gpt2_with_memoria import GPT2WithMemoriaLMHeadModel


@pytest.fixture
def new_memoria_model(tiny_memoria_config, seeded_model):
    """Makes a tiny Memoria Transformer in eval mode, with seeded initial weights."""
    return lambda **overrides: seeded_model(GPT2WithMemoriaLMHeadModel, tiny_memoria_config(**overrides))


def test_memory_without_abstractor_uses_the_hidden_states(new_memoria_model, tiny_segments):
    model = new_memoria_model(memoria_num_memories=None)
    assert model.transformer.abstractor is None
    outputs = [model(input_ids=x) for x in tiny_segments(3)]
    assert outputs[-1].reminded_indices.size(1) > 0


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_the_abstractor_and_the_memory_cross_attention(new_memoria_model, shared, tiny_segments):
    model = new_memoria_model(memoria_shared_memory_attention=shared)
    model.train()
    *earlier, last = tiny_segments(3)
    with torch.no_grad():
        for x in earlier:
            model(input_ids=x)
    model(input_ids=last).logits.logsumexp(-1).sum().backward()
    named = dict(model.named_parameters())
    abstractor = "transformer.memory.abstractor."
    checked = [name for name in named if name.startswith(abstractor) or ".memory_reader.attention." in name]
    assert any(name.startswith(abstractor) for name in checked)
    for layer in range(2):
        for module in range(1 if shared else 2):
            assert f"transformer.h.{layer}.memory_reader.attention.{module}.kv_proj.weight" in checked
        assert f"transformer.h.{layer}.memory_reader.attention.{1 if shared else 2}.q_proj.weight" not in named
    for name in checked:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name


def test_the_shared_memory_attention_is_one_module_read_twice(new_memoria_model, tiny_segments):
    shared, separate = new_memoria_model(), new_memoria_model(memoria_shared_memory_attention=False)
    attention = shared.transformer.h[0].memory_attn[0]
    per_attention = sum(p.numel() for p in attention.parameters())
    assert shared.num_parameters() == separate.num_parameters() - 2 * per_attention

    # the working-memory read and the reminded read both go through the one module
    calls = []
    attention.register_forward_hook(lambda module, args, output: calls.append(args[1].size(1)))
    for x in tiny_segments(3):
        shared(input_ids=x)
    assert len(calls) == 6 and calls[4] > 0 and calls[5] > 0  # the third segment reads both kinds of memory


def test_paper_lifespan_delta_is_the_mean_attention_times_padded_width_and_alpha(new_memoria_model, tiny_segments):
    model = new_memoria_model(memoria_lifespan_extend_scale=2.0)
    weights = []
    for block in model.transformer.h:
        block.memory_attn[0].register_forward_hook(lambda module, args, output: weights.append(output[1]))
    for x in tiny_segments(4):
        weights.clear()
        output = model(input_ids=x)
        if output.reminded_indices.size(1) == 0:
            continue
        real = output.reminded_indices >= 0
        reminded_weights = torch.stack(weights[1::2])  # [Layers, B, H, L, R]: each block's second read
        expected = reminded_weights.mean(dim=(0, 2, 3)) * real.size(1) * 2.0
        torch.testing.assert_close(output.lifespan_delta, expected)
        assert torch.all(output.lifespan_delta[~real] == 0)
        # not renormalised: a row whose queries attend elsewhere too hands out less than alpha per engram
        assert torch.all(output.lifespan_delta.sum(-1) <= real.size(1) * 2.0 + 1e-5)


def test_renormalised_lifespan_delta_shares_alpha_per_reminded_engram(new_memoria_model, tiny_segments):
    model = new_memoria_model(memoria_lifespan_extend_scale=2.0, memoria_lifespan_delta="renormalised")
    outputs = [model(input_ids=x) for x in tiny_segments(5)]
    for output in outputs[2:]:
        real = output.reminded_indices >= 0
        assert real.any()
        assert torch.all(output.lifespan_delta[~real] == 0)
        torch.testing.assert_close(output.lifespan_delta.sum(-1), real.sum(-1).float() * 2.0)


def test_starts_from_a_local_gpt2_checkpoint(tmp_path, new_memoria_model, tiny_gpt2_fields, tiny_segments):
    torch.manual_seed(1)
    gpt2 = GPT2LMHeadModel(GPT2Config(**{**tiny_gpt2_fields, "vocab_size": 12, "n_positions": 32}))
    gpt2.save_pretrained(tmp_path)
    model = new_memoria_model()
    copied = copy_gpt2_weights(model, tmp_path)

    source = gpt2.transformer
    target = model.transformer
    torch.testing.assert_close(target.h[0].attn.c_attn.weight, source.h[0].attn.c_attn.weight.t())
    torch.testing.assert_close(target.h[1].mlp.c_proj.weight, source.h[1].mlp.c_proj.weight.t())
    torch.testing.assert_close(target.wte.weight, source.wte.weight[:9])
    torch.testing.assert_close(target.wpe.weight, source.wpe.weight[:16])
    torch.testing.assert_close(target.ln_f.weight, source.ln_f.weight)
    assert not any("memory" in name for name in copied)  # the memory reads and the Abstractor stay as initialised

    baseline = GPT2SegmentLMHeadModel(GPT2SegmentConfig(**{**tiny_gpt2_fields, "vocab_size": 12, "n_positions": 32}))
    copy_gpt2_weights(baseline, tmp_path)
    x = tiny_segments(1)[0]
    torch.testing.assert_close(baseline.eval()(input_ids=x).logits, gpt2.eval()(input_ids=x).logits)
