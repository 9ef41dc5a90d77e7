"""MemoriaLayer: one residual branch that reads and writes Memoria, with its memory inside the module."""

import inspect
import os
import traceback
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.counting import _is_sync
from memoria import EngramType
from memoria.nn import MemoriaLayer, exclude_memory
from tests.helpers import saved_and_loaded, small_memory_settings

D, H = 16, 2
SMALL = small_memory_settings(4)


def make_layer(**settings):
    torch.manual_seed(0)
    return MemoriaLayer(D, H, **{**SMALL, **settings})


def segments(num_segments=5, batch_size=3, length=6, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, length, D, generator=generator) for _ in range(num_segments)]


def run(layer, inputs):
    return [layer(x) for x in inputs]


def test_settings_after_the_first_two_are_keyword_only_with_defaults():
    parameters = list(inspect.signature(MemoriaLayer).parameters.values())
    assert [p.name for p in parameters[:2]] == ["hidden_size", "num_heads"]
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in parameters[2:])
    documented = inspect.getdoc(MemoriaLayer)
    assert all(f"{p.name}:" in documented for p in parameters)


def test_defaults_are_the_papers():
    layer = MemoriaLayer(D, H)
    memoria = layer.memory.memoria
    assert (memoria.stm_capacity, memoria.num_reminded_stm, memoria.num_final_ltms) == (400, 50, 50)
    assert (memoria.ltm_search_depth, memoria.initial_lifespan, memoria.mode) == (10, 9, "paper")
    assert layer.memory.abstractor.num_memories == 50 and layer.memory.lifespan_alpha == 8.0
    assert layer.memory.lifespan_rule == "paper" and layer.memory.working_memory == "previous"


def test_first_segment_reads_nothing_later_ones_read_memory():
    outputs = run(make_layer(), segments())
    assert all(y.shape == (3, 6, D) for y in outputs)
    assert torch.all(outputs[0] == 0)
    assert all(y.abs().sum() > 0 for y in outputs[1:])


def test_reset_period_one_is_the_memoryless_ablation():
    outputs = run(make_layer(reset_period=1), segments())
    assert all(torch.all(y == 0) for y in outputs)


def test_a_pre_norm_block_holds_it_as_a_residual_branch():
    layer, norm = make_layer(), torch.nn.LayerNorm(D)
    for x in segments():
        y = x + layer(norm(x))
    assert y.shape == (3, 6, D) and torch.isfinite(y).all()


def with_other_rows_changed(inputs):
    changed = [x.clone() for x in inputs]
    for x in changed:
        x[1:] = torch.randn_like(x[1:]) * 3
    return changed


@pytest.mark.parametrize("rule", ["paper", "renormalised"])
def test_a_rows_output_does_not_depend_on_other_rows_inputs(rule):
    inputs = segments(num_segments=4)
    first, second = make_layer(lifespan_rule=rule), make_layer(lifespan_rule=rule)
    for x in inputs[:3]:
        first(x), second(x)
    x = inputs[3]
    torch.testing.assert_close(first(x)[0], second(with_other_rows_changed([x])[0])[0], rtol=0, atol=1e-6)


def test_paper_mode_gives_ties_to_the_oldest_engram_reference_mode_draws_like_1_0_0():
    assert make_layer().memory.memoria.tie_break == "oldest"
    assert make_layer(mode="reference").memory.memoria.tie_break == "random"
    assert make_layer(tie_break="random").memory.memoria.tie_break == "random"
    with pytest.raises(ValueError, match="tie_break"):
        make_layer(tie_break="first")


def test_paper_mode_draws_nothing_from_torchs_generator():
    layer, inputs = make_layer(), segments(num_segments=8)
    state = torch.get_rng_state()
    run(layer, inputs)
    assert len(layer.memory.memoria.store.positions(EngramType.LONGTERM)[0]) > 0, "seeds had LTM engrams to pick"
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("rule", ["renormalised", "paper"])
def test_rows_stay_independent_over_many_segments(rule):
    """Over 12 segments, the other rows' inputs change their numbers of engrams (so, under 1.0.0's tie-breaks,
    the shape of the noise that breaks row 0's ties); row 0's outputs stay the same. The paper's lifespan rule
    scales by the batch's padded reminded width, which every row fills here (SMALL reminds at most 8 of 8 + 4)."""
    inputs = segments(num_segments=12)
    first = run(make_layer(lifespan_rule=rule), inputs)
    second = run(make_layer(lifespan_rule=rule), with_other_rows_changed(inputs))
    for a, b in zip(first, second):
        torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)


def test_reset_rows_forgets_them_and_leaves_the_other_rows_outputs_unchanged():
    inputs = segments(num_segments=8)
    kept, reset = make_layer(lifespan_rule="renormalised"), make_layer(lifespan_rule="renormalised")
    for x in inputs[:3]:
        kept(x), reset(x)
    reset.reset_memory(rows=torch.tensor([False, True, False]))
    for step, x in enumerate(inputs[3:]):
        a, b = kept(x), reset(x)
        torch.testing.assert_close(a[[0, 2]], b[[0, 2]], rtol=0, atol=1e-6)
        if step == 0:
            assert torch.all(b[1] == 0) and a[1].abs().sum() > 0  # nothing to read, like a first segment


@pytest.mark.parametrize("settings", [{}, {"static_shapes": True, "max_ltm_per_row": 8}], ids=["default", "static"])
def test_with_nothing_reminded_the_layer_reads_its_working_memory_only(settings):
    layer = make_layer(num_reminded_stm=0, num_reminded_ltm=0, **settings)
    for x in segments(num_segments=6):
        memories = layer.memory.read(x)
        working = layer.reader.read_working(x, memories)
        read, weights = layer.reader.read_reminded(x + working, memories)
        assert memories.reminded.shape[1] == 0 and torch.all(read == 0)
        layer.memory.write(weights, x)
    y = layer(segments(num_segments=1, seed=9)[0])
    assert torch.isfinite(y).all() and y.abs().sum() > 0


# ------------------------------------------------------------------------------------------ gradients
def test_gradient_reaches_abstractor_and_attention_through_the_current_segment_only():
    layer = make_layer()
    layer(torch.randn(3, 6, D))
    first = torch.randn(3, 6, D, requires_grad=True)
    layer(first)  # kept, detached, for the next call's working memory
    second = torch.randn(3, 6, D, requires_grad=True)
    layer(second).pow(2).sum().backward()
    assert first.grad is None  # the previous segment is detached
    assert second.grad.abs().sum() > 0
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_every_parameter_takes_part_in_the_first_segments_graph():
    """DDP without find_unused_parameters needs a gradient, possibly zero, for every parameter each call."""
    for settings in ({}, {"shared_attention": False}, {"working_memory": "current"}):
        layer = make_layer(**settings)
        layer(torch.randn(3, 6, D)).sum().backward()
        missing = [name for name, p in layer.named_parameters() if p.grad is None]
        assert not missing, (settings, missing)


def test_engrams_are_stored_detached():
    layer = make_layer()
    for x in segments(3):
        layer(x.requires_grad_())
    assert not layer.memory.memoria.store.data.requires_grad


# ------------------------------------------------------------------------------------------ state
class TinyModel(torch.nn.Module):
    def __init__(self, **settings):
        super().__init__()
        torch.manual_seed(0)
        self.norm = torch.nn.LayerNorm(D)
        self.memoria = MemoriaLayer(D, H, **{**SMALL, **settings})

    def forward(self, x):
        return x + self.memoria(self.norm(x))


def test_a_saved_model_loads_with_weights_only_and_gives_the_same_next_output():
    model = TinyModel(mode="reference")
    inputs = segments(num_segments=6)
    for x in inputs[:5]:
        model(x)
    state = saved_and_loaded(model.state_dict())
    assert "memoria.memory._extra_state" in state
    fresh = TinyModel(mode="reference")
    fresh.load_state_dict(state)
    torch.manual_seed(3)  # reference mode draws its tie-break noise from the global generator
    expected = model(inputs[5])
    torch.manual_seed(3)
    assert torch.equal(fresh(inputs[5]), expected)


def test_a_model_saved_without_memory_loads_with_an_empty_memory():
    model = TinyModel()
    for x in segments(num_segments=3):
        model(x)
    with exclude_memory(model):
        state = saved_and_loaded(model.state_dict())
    fresh = TinyModel()
    fresh.load_state_dict(state)
    x = torch.randn(3, 6, D)
    assert torch.equal(fresh(x), x + 0 * x)  # the first segment of an empty memory reads nothing


def test_to_dtype_runs_in_that_dtype_with_float32_engrams():
    model = TinyModel()
    inputs = segments(num_segments=4)
    for x in inputs[:2]:
        model(x)
    model.to(torch.float64)
    for x in inputs[2:]:
        y = model(x.double())
    assert y.dtype == torch.float64
    assert model.memoria.memory.memoria.store.data.dtype == torch.float32


@pytest.mark.cuda
def test_to_cuda_moves_the_memory_with_the_model():
    model = TinyModel()
    inputs = segments(num_segments=4)
    for x in inputs[:2]:
        model(x)
    model.to("cuda")
    for x in inputs[2:]:
        y = model(x.cuda())
    assert y.is_cuda and model.memoria.memory.memoria.store.device.type == "cuda"


def test_compiles_with_fullgraph_on_the_static_shape_path():
    # random draws as in eager mode; config.patch restores the setting (monkeypatch would delete it afterwards)
    with torch._inductor.config.patch(fallback_random=True):
        compiled = torch.compile(make_layer(static_shapes=True, max_ltm_per_row=8), fullgraph=True)
        eager = make_layer(static_shapes=True, max_ltm_per_row=8)
        for step, x in enumerate(segments(num_segments=4)):
            torch.manual_seed(step)
            expected = eager(x)
            torch.manual_seed(step)
            torch.testing.assert_close(compiled(x), expected)


class SyncsByCaller(TorchDispatchMode):
    """Counts host synchronisations by the innermost memoria source file that asked for them."""

    def __init__(self):
        super().__init__()
        self.callers = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if _is_sync(func, args, kwargs):
            files = [
                frame.filename for frame in traceback.extract_stack() if f"{os.sep}memoria{os.sep}" in frame.filename
            ]
            self.callers[files[-1].split(f"{os.sep}memoria{os.sep}", 1)[-1] if files else "?"] += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("settings", [{}, {"working_memory": "current"}, {"num_working_memories": None}])
def test_the_layers_own_code_makes_no_host_synchronisation(settings):
    """Only Memoria's own step may synchronise (until its static-shape path): the layer adds none of its own."""
    layer = make_layer(**settings)
    for x in segments(num_segments=4):
        layer(x)
    with SyncsByCaller() as syncs:
        layer(torch.randn(3, 6, D)).sum().backward()
    assert not [caller for caller in syncs.callers if caller.startswith(f"nn{os.sep}")], syncs.callers


def test_ddp_without_find_unused_parameters_trains_from_the_first_segment(tmp_path):
    """DDP refuses the next backward when a parameter got no gradient in the previous one."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        model = DistributedDataParallel(TinyModel())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in segments(num_segments=3):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    finally:
        dist.destroy_process_group()


def test_memory_advances_once_per_call_in_training_evaluation_and_without_gradient():
    """Gradient accumulation sees one memory step per forward call, whatever the mode."""
    layer = make_layer(num_working_memories=2, stm_capacity=64, initial_lifespan=50)
    x = torch.randn(3, 6, D)
    layer(x)  # the first call keeps its hidden states; each later call stores 2 engrams per row
    lengths = []
    for mode in ("train", "eval", "no_grad"):
        layer.train(mode == "train")
        with torch.set_grad_enabled(mode != "no_grad"):
            layer(x)
        lengths.append(layer.memory.memoria.store.length)
    assert lengths == [2, 4, 6]
