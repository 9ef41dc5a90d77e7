"""What only the Recurrent Memory Transformer does: both memories carried as the core expects, XL rows run apart,
truncated backpropagation through the memory tokens, padding ending a row's stream. The contract every model keeps
is tested in test_model_contract.py."""

import copy

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from experiment.models.rmt import RMTConfig, RMTForCausalLM

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


def test_memory_tokens_stay_in_the_graph_until_detached_unless_bptt_segments_is_0():
    assert memory_token_gradient(0, 2).abs().sum() == 0
    one, three = memory_token_gradient(1, 3), memory_token_gradient(3, 3)
    torch.testing.assert_close(one, three)  # the model itself never truncates: the caller's windows do
    model = tiny_model(bptt_segments=1).train()
    run(model, segments(3))
    assert model.rmt.state.read_memories.grad_fn is not None
    assert model.bptt_segments == 1


def test_detach_memory_cuts_the_graph():
    model = tiny_model(bptt_segments=3).train()
    run(model, segments(1))
    assert model.rmt.state.read_memories.grad_fn is not None
    model.detach_memory()
    assert model.rmt.state.read_memories.grad_fn is None


def test_embeddings_get_the_full_gradient_by_default_as_the_rmt_paper_trains():
    def embedding_gradient(fraction):
        model = tiny_model(emb_gradient_frac=fraction).train()
        run(model, segments(1))[0].square().mean().backward()
        return model.rmt.core.token_emb.weight.grad

    torch.testing.assert_close(embedding_gradient(0.1) * 10, embedding_gradient(1.0))
    assert tiny_config().emb_gradient_frac == 1.0
    with pytest.raises(StrictDataclassClassValidationError, match="emb_gradient_frac"):
        tiny_config(emb_gradient_frac=1.5)


def sorting_batch(num_segments: int) -> dict:
    """Rows of ``num_segments`` segments whose only labels (the targets) lie in the last segment."""
    input_ids = torch.cat(segments(num_segments), dim=1)  # [B, num_segments * SEGMENT]
    labels = torch.full_like(input_ids, -100)
    labels[:, -SEGMENT // 2 :] = input_ids[:, -SEGMENT // 2 :]
    return {"input_ids": input_ids, "labels": labels}


def task_memory_token_gradient(bptt_segments: int, num_segments: int = 4) -> tuple:
    """Trains one step of the sorting task on targets in the last segment only; returns the memory tokens'
    gradient and, per segment, whether it ran with gradients enabled."""
    from experiment.tasks import SortingTask

    torch.manual_seed(0)
    task = SortingTask(tiny_config(bptt_segments=bptt_segments).to_dict(), segment_length=SEGMENT).train()
    graphs = []
    task.model.rmt.register_forward_pre_hook(
        lambda module, args, kwargs: graphs.append(torch.is_grad_enabled()), with_kwargs=True
    )
    task.run_batch(sorting_batch(num_segments), "train")["loss"].backward()
    return task.model.rmt.core.memory_tokens.grad, graphs


@pytest.mark.parametrize("bptt_segments", [1, 2])
def test_the_loss_on_a_later_segment_reaches_the_memory_tokens_through_the_task(bptt_segments):
    gradient, graphs = task_memory_token_gradient(bptt_segments)
    assert gradient is not None and gradient.abs().sum() > 0
    assert graphs == [False] * (3 - bptt_segments) + [True] * (bptt_segments + 1)


def test_without_bptt_segments_no_gradient_reaches_the_memory_tokens_through_the_task():
    gradient, graphs = task_memory_token_gradient(0)
    assert gradient is None or gradient.abs().sum() == 0
    assert graphs == [False, False, False, True]


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


def first_layer_keys(model: RMTForCausalLM, inputs: list) -> torch.Tensor:
    """The keys the first layer's attention compares its queries with in the last of ``inputs``, after positions
    are applied, shaped [BatchSize, Heads, Keys, HeadDim], in the core's order: [XL, null, read memory, segment,
    write memory]."""
    captured = []
    attend = model.rmt.core.layers[0][0].branch.attend
    handle = attend.register_forward_pre_hook(lambda module, args: captured.append(args[1]))
    with torch.no_grad():
        run(model, inputs)
    handle.remove()
    return captured[-1]


def test_a_segment_tells_the_xl_memory_from_its_own_tokens():
    # The same token at the same positions in two segments: the XL memory of the first holds keys for positions
    # SEGMENT - (xl_mem_len - M) .. SEGMENT - 1; the second segment's own tokens there must not give the same keys.
    model = tiny_model().eval()
    config = model.config
    same = torch.full((2, SEGMENT), 5)
    keys = first_layer_keys(model, [same, same])
    cached_tokens = config.xl_mem_len - config.num_memory_tokens
    first_position = SEGMENT - cached_tokens
    segment_start = config.xl_mem_len + 1 + config.num_memory_tokens
    cached = keys[:, :, :cached_tokens]
    own = keys[:, :, segment_start + first_position : segment_start + SEGMENT]
    assert (cached - own).abs().amax(dim=-1).min() > 1e-3


def test_xl_memories_need_rotary_positions():
    with pytest.raises(StrictDataclassClassValidationError, match="rotary_pos_emb"):
        tiny_config(abs_pos_emb=True, rotary_pos_emb=False)
    tiny_config(abs_pos_emb=True, rotary_pos_emb=False, use_xl_memories=False)
    tiny_config(abs_pos_emb=True, rotary_pos_emb=True)


def test_embedding_init_std_redraws_the_token_and_position_tables():
    library, small = tiny_model(abs_pos_emb=True), tiny_model(abs_pos_emb=True, embedding_init_std=0.02)
    assert library.rmt.core.token_emb.weight.std() > 0.5  # the library's standard normal
    for table in (small.rmt.core.token_emb, small.rmt.core.pos_emb):
        assert 0.01 < table.weight.std() < 0.03
    torch.testing.assert_close(small.rmt.core.to_logits.weight, library.rmt.core.to_logits.weight)
    with pytest.raises(StrictDataclassClassValidationError, match="embedding_init_std"):
        tiny_config(embedding_init_std=0.0)
