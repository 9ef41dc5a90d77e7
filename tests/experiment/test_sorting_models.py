"""The Memoria Transformer and the baseline: Hugging Face round trips, memory resets, gradients, lifespan."""

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from experiment.longseq_formers.model.gpt2_segment import GPT2SegmentConfig, GPT2SegmentLMHeadModel, GPT2SegmentModel
from experiment.longseq_formers.model.gpt2_weights import copy_gpt2_weights
from experiment.longseq_formers.model.gpt2_with_memoria import (
    GPT2WithMemoriaConfig,
    GPT2WithMemoriaLMHeadModel,
    GPT2WithMemoriaModel,
)
from experiment.longseq_formers.model.segment_recurrent import SegmentRecurrentModel


def segments(num_segments: int, batch_size: int = 3, length: int = 8, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 9, (batch_size, length), generator=generator) for _ in range(num_segments)]


def run(model, inputs: list, seed: int = 0) -> list:
    """Runs the segments in order with seeded Memoria tie-breaking; returns each segment's logits."""
    torch.manual_seed(seed)
    return [model(input_ids=x).logits for x in inputs]


@pytest.fixture
def new_memoria_model(tiny_memoria_config):
    """Makes a tiny Memoria Transformer in eval mode, with seeded initial weights."""

    def make(**overrides) -> GPT2WithMemoriaLMHeadModel:
        torch.manual_seed(0)
        return GPT2WithMemoriaLMHeadModel(tiny_memoria_config(**overrides)).eval()

    return make


def test_both_models_are_built_by_the_auto_classes_from_their_config_files(tiny_config_files):
    memoria_model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_config_files["memoria"]))
    baseline = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_config_files["baseline"]))
    assert isinstance(memoria_model, GPT2WithMemoriaLMHeadModel) and isinstance(memoria_model, SegmentRecurrentModel)
    assert isinstance(baseline, GPT2SegmentLMHeadModel) and isinstance(baseline, SegmentRecurrentModel)
    for model in (memoria_model, baseline):
        model.reset_memory()
        assert model(input_ids=segments(1)[0]).logits.shape == (3, 8, 9)
    assert isinstance(AutoModel.from_config(baseline.config), GPT2SegmentModel)


def test_memoria_model_takes_no_padding(new_memoria_model):
    model = new_memoria_model()
    x = segments(1)[0]
    assert model(input_ids=x, attention_mask=torch.ones_like(x)).logits.shape == (3, 8, 9)
    with pytest.raises(ValueError, match="attention_mask"):
        model(input_ids=x, attention_mask=torch.zeros_like(x))


def test_save_and_load_round_trip_through_auto_classes(tmp_path, new_memoria_model):
    model = new_memoria_model()
    inputs = segments(3)
    expected = run(model, inputs)
    model.save_pretrained(tmp_path)

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, GPT2WithMemoriaConfig)
    assert config.memoria_num_memories == 4 and config.memoria_lifespan_extend_scale == 8.0
    for loaded in (
        GPT2WithMemoriaLMHeadModel.from_pretrained(tmp_path),
        AutoModelForCausalLM.from_pretrained(tmp_path),
    ):
        assert isinstance(loaded, GPT2WithMemoriaLMHeadModel)
        for got, want in zip(run(loaded.eval(), inputs), expected):
            torch.testing.assert_close(got, want)
    assert isinstance(AutoModel.from_pretrained(tmp_path), GPT2WithMemoriaModel)


def test_memory_changes_the_output_and_reset_forgets_it(new_memoria_model):
    model = new_memoria_model()
    inputs = segments(4)
    fresh = run(model, inputs[3:])[0]
    model.reset_memory()
    with_memory = run(model, inputs)[3]
    assert not torch.allclose(with_memory, fresh)
    model.reset_memory()
    torch.testing.assert_close(run(model, inputs[3:])[0], fresh)


@pytest.mark.parametrize("rows", [torch.tensor([1]), torch.tensor([False, True, False])])
def test_reset_of_chosen_rows_leaves_the_others(rows, new_memoria_model):
    model = new_memoria_model()
    inputs = segments(4)
    untouched = run(model, inputs)[3]
    model.reset_memory()
    fresh = run(model, inputs[3:])[0]

    model.reset_memory()
    run(model, inputs[:3])
    model.reset_memory(rows)
    after = run(model, inputs[3:])[0]
    torch.testing.assert_close(after[1], fresh[1])
    torch.testing.assert_close(after[[0, 2]], untouched[[0, 2]])


def test_memory_without_abstractor_uses_the_hidden_states(new_memoria_model):
    model = new_memoria_model(memoria_num_memories=None)
    assert model.transformer.abstractor is None
    outputs = [model(input_ids=x) for x in segments(3)]
    assert outputs[-1].reminded_indices.size(1) > 0


def test_gradients_reach_the_abstractor_and_both_cross_attentions(new_memoria_model):
    model = new_memoria_model()
    model.train()
    *earlier, last = segments(3)
    with torch.no_grad():
        for x in earlier:
            model(input_ids=x)
    model(input_ids=last).logits.logsumexp(-1).sum().backward()
    named = dict(model.named_parameters())
    checked = [name for name in named if name.startswith("transformer.abstractor.") or "_attn." in name]
    assert any(name.startswith("transformer.abstractor.") for name in checked)
    for layer in range(2):
        assert f"transformer.h.{layer}.working_attn.q_proj.weight" in checked
        assert f"transformer.h.{layer}.reminded_attn.kv_proj.weight" in checked
    for name in checked:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name


def test_lifespan_delta_shares_alpha_per_reminded_engram_and_skips_padding(new_memoria_model):
    model = new_memoria_model(memoria_lifespan_extend_scale=2.0)
    outputs = [model(input_ids=x) for x in segments(5)]
    for output in outputs[2:]:
        real = output.reminded_indices >= 0
        assert real.any()
        assert torch.all(output.lifespan_delta[~real] == 0)
        torch.testing.assert_close(output.lifespan_delta.sum(-1), real.sum(-1).float() * 2.0)


def test_a_batch_of_another_size_needs_a_reset(new_memoria_model):
    model = new_memoria_model()
    model(input_ids=segments(1, batch_size=3)[0])
    with pytest.raises(ValueError, match="reset_memory"):
        model(input_ids=segments(1, batch_size=2)[0])
    model.reset_memory()
    assert model(input_ids=segments(1, batch_size=2)[0]).logits.shape[0] == 2


def test_reset_period_resets_memory_on_its_own(new_memoria_model):
    periodic = new_memoria_model(memoria_reset_period=2)
    inputs = segments(3)
    third = run(periodic, inputs)[2]
    fresh = run(new_memoria_model(), inputs[2:])[0]
    torch.testing.assert_close(third, fresh)


def test_starts_from_a_local_gpt2_checkpoint(tmp_path, new_memoria_model, tiny_gpt2_fields):
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
    assert not any("working_attn" in name or "abstractor" in name for name in copied)

    baseline = GPT2SegmentLMHeadModel(GPT2SegmentConfig(**{**tiny_gpt2_fields, "vocab_size": 12, "n_positions": 32}))
    copy_gpt2_weights(baseline, tmp_path)
    x = segments(1)[0]
    torch.testing.assert_close(baseline.eval()(input_ids=x).logits, gpt2.eval()(input_ids=x).logits)
