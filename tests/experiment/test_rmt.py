"""The Recurrent Memory Transformer baseline under the experiment model contract."""

import copy
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from experiment.models.rmt import RMTConfig, RMTForCausalLM, RMTModel

CONFIGS = Path("experiment/configs")
VOCAB = 11
SEGMENT = 8


def tiny_config(**overrides) -> RMTConfig:
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_segment_length=SEGMENT,
        num_memory_tokens=4,
        xl_mem_len=SEGMENT,
    )
    return RMTConfig(**{**fields, **overrides})


def tiny_model(seed: int = 0, **overrides) -> RMTForCausalLM:
    torch.manual_seed(seed)
    return RMTForCausalLM(tiny_config(**overrides))


def segments(num_segments: int, batch_size: int = 3, seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, VOCAB, (batch_size, SEGMENT), generator=generator) for _ in range(num_segments)]


def run(model: RMTForCausalLM, inputs: list) -> list:
    return [model(input_ids=x).logits for x in inputs]


def test_output_shapes_and_auto_registration():
    config = tiny_config()
    model = AutoModelForCausalLM.from_config(config)
    assert isinstance(model, RMTForCausalLM)
    assert isinstance(AutoModel.from_config(config), RMTModel)
    x = segments(1)[0]
    output = model(input_ids=x)
    assert output.logits.shape == (3, SEGMENT, VOCAB)
    assert output.last_hidden_state.shape == (3, SEGMENT, 32)
    assert output.aux_loss is None
    torch.testing.assert_close(model.rmt.core.to_logits(output.last_hidden_state), output.logits)


def test_earlier_segment_changes_later_logits():
    model = tiny_model().eval()
    first, second = segments(2)
    with torch.no_grad():
        later = run(model, [first, second])[1]
        model.reset_memory()
        later_after_other_first = run(model, [(first + 1) % VOCAB, second])[1]
    assert not torch.allclose(later, later_after_other_first, atol=1e-4)


def test_memory_carried_across_calls_matches_threading_the_core_by_hand():
    model = tiny_model().eval()
    inputs = segments(3)
    core = model.rmt.core
    with torch.no_grad():
        wrapped = run(model, inputs)
        memories, xl_memories, by_hand = None, None, []
        for x in inputs:
            logits, memories, xl_memories = core(x, memories, xl_memories=xl_memories)
            by_hand.append(logits)
    for ours, expected in zip(wrapped, by_hand):
        torch.testing.assert_close(ours, expected, rtol=0, atol=0)


def test_xl_memories_are_carried():
    with_xl = tiny_model().eval()
    without_xl = RMTForCausalLM(tiny_config(use_xl_memories=False)).eval()
    without_xl.load_state_dict(with_xl.state_dict())
    inputs = segments(2)
    with torch.no_grad():
        first_xl, second_xl = run(with_xl, inputs)
        first_plain, second_plain = run(without_xl, inputs)
    torch.testing.assert_close(first_xl, first_plain)
    assert not torch.allclose(second_xl, second_plain, atol=1e-4)


def test_reset_memory_gives_fresh_model_logits():
    model = tiny_model().eval()
    fresh = copy.deepcopy(model)
    first, second, third = segments(3)
    with torch.no_grad():
        run(model, [first, second])
        model.reset_memory()
        assert model.rmt.state is None
        torch.testing.assert_close(run(model, [third])[0], run(fresh, [third])[0], rtol=0, atol=0)


@pytest.mark.parametrize("rows", [[1], torch.tensor([1]), torch.tensor([False, True, False])])
def test_resetting_chosen_rows_leaves_other_rows_unchanged(rows):
    model = tiny_model().eval()
    fresh = copy.deepcopy(model)
    first, second, third = segments(3)
    with torch.no_grad():
        run(model, [first, second])
        untouched = copy.deepcopy(model)
        state_before = copy.deepcopy(model.rmt.state)
        model.reset_memory(rows)
        state = model.rmt.state
        keep = torch.tensor([0, 2])
        assert torch.equal(state.read_memories[keep], state_before.read_memories[keep])
        for xl, xl_before in zip(state.xl_memories, state_before.xl_memories):
            assert torch.equal(xl[:, keep], xl_before[:, keep])
        assert state.has_xl.tolist() == [True, False, True]
        logits = run(model, [third])[0]
        torch.testing.assert_close(logits[keep], run(untouched, [third])[0][keep], rtol=0, atol=1e-6)
        torch.testing.assert_close(logits[1], run(fresh, [third])[0][1], rtol=0, atol=1e-6)


def test_reset_row_is_fresh_over_several_segments():
    model = tiny_model().eval()
    fresh = copy.deepcopy(model)
    inputs = segments(4)
    with torch.no_grad():
        run(model, inputs[:2])
        model.reset_memory([0])
        ours = run(model, inputs[2:])
        expected = run(fresh, [x[:1] for x in inputs[2:]])
    for logits, fresh_logits in zip(ours, expected):
        torch.testing.assert_close(logits[:1], fresh_logits, rtol=0, atol=1e-6)


def memory_token_gradient(bptt_segments: int, num_segments: int) -> torch.Tensor:
    model = tiny_model(bptt_segments=bptt_segments).train()
    logits = run(model, segments(num_segments))
    logits[-1].square().mean().backward()
    return model.rmt.core.memory_tokens.grad


def test_gradients_reach_the_memory_parameters():
    model = tiny_model().train()
    logits = run(model, segments(2))
    logits[-1].square().mean().backward()
    assert model.rmt.core.memory_tokens.grad.abs().sum() > 0
    assert model.rmt.core.read_memory_emb.grad.abs().sum() > 0
    assert model.rmt.state.read_memories.grad_fn is None, "bptt_segments=1 detaches after one boundary"


def test_bptt_segments_sets_how_far_gradients_flow_through_memory_tokens():
    assert memory_token_gradient(0, 2).abs().sum() == 0
    one, two, three = (memory_token_gradient(bptt, 3) for bptt in (1, 2, 3))
    assert not torch.allclose(one, two)
    torch.testing.assert_close(two, three)


def test_detach_memory_cuts_the_graph():
    model = tiny_model(bptt_segments=3).train()
    run(model, segments(1))
    assert model.rmt.state.read_memories.grad_fn is not None
    model.detach_memory()
    assert model.rmt.state.read_memories.grad_fn is None


def test_labels_give_the_shifted_cross_entropy():
    model = tiny_model().eval()
    x = segments(1)[0]
    labels = x.clone()
    labels[0, 3] = -100
    with torch.no_grad():
        output = model(input_ids=x, labels=labels)
    expected = F.cross_entropy(output.logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(output.loss, expected)


def test_save_and_load_through_auto_classes(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, RMTForCausalLM)
    assert loaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {"_name_or_path": ""}
    inputs = segments(2)
    with torch.no_grad():
        for ours, theirs in zip(run(model, inputs), run(loaded, inputs)):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_attention_mask_hides_padding():
    model = tiny_model().eval()
    x = segments(1)[0]
    full_mask = torch.ones_like(x)
    padded_mask = full_mask.clone()
    padded_mask[0, 5:] = 0
    with torch.no_grad():
        unmasked = model(input_ids=x).logits
        model.reset_memory()
        torch.testing.assert_close(model(input_ids=x, attention_mask=full_mask).logits, unmasked, rtol=0, atol=0)
        model.reset_memory()
        masked = model(input_ids=x, attention_mask=padded_mask).logits
        model.reset_memory()
        short = model(input_ids=x[:1, :5]).logits
    torch.testing.assert_close(masked[0, :5], short[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(masked[1:], unmasked[1:], rtol=0, atol=1e-6)
    assert not torch.allclose(model.rmt.state.read_memories[0], model.rmt.state.read_memories[0] * 0)


def test_a_padded_row_has_ended_until_reset():
    model = tiny_model().eval()
    x = segments(1)[0]
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[2, 6:] = False
    with torch.no_grad():
        model(input_ids=x, attention_mask=mask)
        with pytest.raises(ValueError, match=r"rows \[2\]"):
            model(input_ids=x)
        only_padding = torch.ones_like(mask)
        only_padding[2] = False
        model(input_ids=x, attention_mask=only_padding)
        model.reset_memory([2])
        model(input_ids=x)


@pytest.mark.parametrize(
    "input_ids, match",
    [
        (torch.zeros(3, SEGMENT), "integer token ids"),
        (torch.zeros(SEGMENT, dtype=torch.long), r"\[BatchSize, SegmentLength\]"),
        (torch.zeros(3, SEGMENT + 1, dtype=torch.long), "max_segment_length"),
        (torch.full((3, SEGMENT), VOCAB), r"\[0, 11\)"),
        (torch.full((3, SEGMENT), -1), r"\[0, 11\)"),
    ],
)
def test_bad_input_ids_are_rejected(input_ids, match):
    with pytest.raises(ValueError, match=match):
        tiny_model()(input_ids=input_ids)


def test_bad_masks_rows_and_batch_changes_are_rejected():
    model = tiny_model()
    x = segments(1)[0]
    with pytest.raises(ValueError, match="attention_mask must be shaped"):
        model(input_ids=x, attention_mask=torch.ones(3, SEGMENT - 1))
    with pytest.raises(ValueError, match="only 0 and 1"):
        model(input_ids=x, attention_mask=torch.full_like(x, 2))
    with pytest.raises(ValueError, match="labels"):
        model(input_ids=x, labels=x[:, :-1])
    model(input_ids=x)
    with pytest.raises(ValueError, match="reset_memory"):
        model(input_ids=x[:2])
    with pytest.raises(ValueError, match=r"indices in \[0, 3\)"):
        model.reset_memory([3])
    with pytest.raises(ValueError, match=r"BatchSize=3"):
        model.reset_memory(torch.tensor([True, False]))
    model.reset_memory()
    assert model(input_ids=x[:2]).logits.shape == (2, SEGMENT, VOCAB)


def test_config_rejects_xl_memory_longer_than_a_segment():
    with pytest.raises(Exception, match="xl_mem_len"):
        tiny_config(xl_mem_len=SEGMENT + 1)


@pytest.mark.parametrize("name", ["rmt-sort", "rmt-sort-small", "rmt-lm", "rmt-lm-small", "rmt-enwik8"])
def test_config_files_load(name):
    config = AutoConfig.from_pretrained(CONFIGS / f"{name}.json")
    assert isinstance(config, RMTConfig)
    fields = json.loads((CONFIGS / f"{name}.json").read_text())
    assert all(getattr(config, key) == value for key, value in fields.items() if key != "model_type")
    assert config.total_memory == (64 if name.endswith("small") else 1024)


def test_small_sorting_config_matches_the_plain_transformer_in_size():
    rmt = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(CONFIGS / "rmt-sort-small.json"))
    gpt2_fields = json.loads((CONFIGS / "gpt2-sort-small.json").read_text())
    gpt2 = AutoModelForCausalLM.from_config(AutoConfig.for_model(**gpt2_fields))
    rmt_parameters = sum(p.numel() for p in rmt.parameters())
    gpt2_parameters = sum(p.numel() for p in gpt2.parameters())
    assert abs(rmt_parameters - gpt2_parameters) / gpt2_parameters < 0.1
    x = torch.randint(0, 21, (2, 32))
    assert rmt(input_ids=x).logits.shape == (2, 32, 21)
