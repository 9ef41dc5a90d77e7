"""The Memoria Transformer and the baseline: Hugging Face round trips, memory resets, gradients, lifespan."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from experiment.models.gpt2_segment import GPT2SegmentConfig, GPT2SegmentLMHeadModel, GPT2SegmentModel
from experiment.models.gpt2_weights import copy_gpt2_weights
from experiment.models.gpt2_with_memoria import (
    GPT2WithMemoriaConfig,
    GPT2WithMemoriaLMHeadModel,
    GPT2WithMemoriaModel,
)
from experiment.models.segment_recurrent import SegmentRecurrentModel


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


@pytest.mark.parametrize("shared", [True, False])
def test_gradients_reach_the_abstractor_and_the_memory_cross_attention(new_memoria_model, shared):
    model = new_memoria_model(memoria_shared_memory_attention=shared)
    model.train()
    *earlier, last = segments(3)
    with torch.no_grad():
        for x in earlier:
            model(input_ids=x)
    model(input_ids=last).logits.logsumexp(-1).sum().backward()
    named = dict(model.named_parameters())
    checked = [name for name in named if name.startswith("transformer.abstractor.") or ".memory_attn." in name]
    assert any(name.startswith("transformer.abstractor.") for name in checked)
    for layer in range(2):
        for module in range(1 if shared else 2):
            assert f"transformer.h.{layer}.memory_attn.{module}.kv_proj.weight" in checked
        assert f"transformer.h.{layer}.memory_attn.{1 if shared else 2}.q_proj.weight" not in named
    for name in checked:
        assert named[name].grad is not None and named[name].grad.abs().sum() > 0, name


def test_the_shared_memory_attention_is_one_module_read_twice(new_memoria_model):
    shared, separate = new_memoria_model(), new_memoria_model(memoria_shared_memory_attention=False)
    attention = shared.transformer.h[0].memory_attn[0]
    per_attention = sum(p.numel() for p in attention.parameters())
    assert shared.num_parameters() == separate.num_parameters() - 2 * per_attention

    # the working-memory read and the reminded read both go through the one module
    calls = []
    attention.register_forward_hook(lambda module, args, output: calls.append(args[1].size(1)))
    for x in segments(3):
        shared(input_ids=x)
    assert len(calls) == 6 and calls[4] > 0 and calls[5] > 0  # the third segment reads both kinds of memory


def test_paper_lifespan_delta_is_the_mean_attention_times_padded_width_and_alpha(new_memoria_model):
    model = new_memoria_model(memoria_lifespan_extend_scale=2.0)
    weights = []
    for block in model.transformer.h:
        block.memory_attn[0].register_forward_hook(lambda module, args, output: weights.append(output[1]))
    for x in segments(4):
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


def test_renormalised_lifespan_delta_shares_alpha_per_reminded_engram(new_memoria_model):
    model = new_memoria_model(memoria_lifespan_extend_scale=2.0, memoria_lifespan_delta="renormalised")
    outputs = [model(input_ids=x) for x in segments(5)]
    for output in outputs[2:]:
        real = output.reminded_indices >= 0
        assert real.any()
        assert torch.all(output.lifespan_delta[~real] == 0)
        torch.testing.assert_close(output.lifespan_delta.sum(-1), real.sum(-1).float() * 2.0)


def test_bad_memoria_fields_are_refused_naming_the_field():
    with pytest.raises(StrictDataclassClassValidationError, match="memoria_lifespan_delta"):
        GPT2WithMemoriaConfig(memoria_lifespan_delta="halved")
    with pytest.raises(StrictDataclassClassValidationError, match="memoria_reset_period"):
        GPT2WithMemoriaConfig(memoria_reset_period=0)


def test_erasing_every_segment_is_the_same_model_without_memory(new_memoria_model):
    ablation, full = new_memoria_model(memoria_reset_period=1), new_memoria_model()
    assert ablation.num_parameters() == full.num_parameters()
    inputs = segments(4)
    erased = run(ablation, inputs)
    for x, logits in zip(inputs, erased):
        torch.testing.assert_close(logits, run(new_memoria_model(), [x])[0])
    assert not torch.allclose(erased[-1], run(full, inputs)[-1])


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
    assert not any("memory_attn" in name or "abstractor" in name for name in copied)

    baseline = GPT2SegmentLMHeadModel(GPT2SegmentConfig(**{**tiny_gpt2_fields, "vocab_size": 12, "n_positions": 32}))
    copy_gpt2_weights(baseline, tmp_path)
    x = segments(1)[0]
    torch.testing.assert_close(baseline.eval()(input_ids=x).logits, gpt2.eval()(input_ids=x).logits)


def test_the_small_sorting_configurations_have_parameter_counts_within_ten_percent():
    import experiment.models  # noqa: F401  (registers every model)
    from experiment.recipes.sorting import TASK

    counts = {}
    for key, model in TASK.models.items():
        config = AutoConfig.from_pretrained(model.config_path, vocab_size=21, **model.overrides)
        counts[key] = AutoModelForCausalLM.from_config(config).num_parameters()
    compared = [counts[key] for key in TASK.default_models]
    assert len(compared) == 7 and max(compared) <= 1.1 * min(compared), counts
    # the two-attention variant adds one cross-attention per block on purpose; the others change no parameter
    assert counts["memoria:two_memory_attentions"] > counts["memoria"] == counts["memoria:renormalised_lifespan_delta"]
