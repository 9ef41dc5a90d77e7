"""Saving and restoring a Memoria: every bad state is refused naming the field, and leaves the memory as it was."""

import copy
import io
import math

import numpy as np
import pytest
import torch

from memoria import Memoria

SETTINGS = dict(num_reminded_stm=3, stm_capacity=4, ltm_search_depth=2, initial_lifespan=3, num_final_ltms=3)
FLAGS = dict(track_age=True, track_id=True, keep_history=True)


def steps(memoria: Memoria, count: int, seed: int = 0, batch: int = 2, hidden: int = 6) -> Memoria:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for _ in range(count):
        memoria.add_working_memory(torch.rand(batch, 3, hidden, generator=g))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, (torch.rand(indices.shape, generator=g) * 4).round())
    return memoria


def mid_step(seed: int = 1) -> Memoria:
    """A memory with engrams of every type, stopped after remind() (so the state holds reminded positions)."""
    memoria = steps(Memoria(**SETTINGS, **FLAGS), 6)
    memoria.add_working_memory(torch.rand(2, 3, 6, generator=torch.Generator().manual_seed(seed)))
    memoria.remind()
    return memoria


def assert_equal_states(a, b, where="state") -> None:
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_states(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_equal_states(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def engrams(state):
    return state["engrams"]


def shrink(name, dim):
    def change(state):
        tensor = engrams(state)[name]
        engrams(state)[name] = tensor.narrow(dim, 0, tensor.size(dim) - 1)

    return change


def set_engrams(name, value):
    def change(state):
        engrams(state)[name] = value(engrams(state)[name]) if callable(value) else value

    return change


def set_state(name, value):
    def change(state):
        state[name] = value(state[name]) if callable(value) else value

    return change


def drop(*path):
    def change(state):
        container = state
        for key in path[:-1]:
            container = container[key]
        del container[path[-1]]

    return change


def put(tensor_name, index, value):
    def change(state):
        tensor = engrams(state)[tensor_name].clone()
        tensor[index] = value
        engrams(state)[tensor_name] = tensor

    return change


BAD_STATES = {
    "missing settings": (drop("settings"), r"state lacks \['settings'\]"),
    "missing expected_call": (drop("expected_call"), r"lacks \['expected_call'\]"),
    "missing engram data": (drop("engrams", "data"), r"state\['engrams'\] lacks \['data'\]"),
    "unknown key": (lambda s: s.update(extra=1), r"state has unknown keys \['extra'\]"),
    "unknown engram key": (lambda s: engrams(s).update(extra=1), r"state\['engrams'\] has unknown keys \['extra'\]"),
    "truncated data": (shrink("data", 1), r"'data'\] must be shaped \[B, N, D\]"),
    "data of another hidden size": (shrink("data", 2), r"'data'\] must be shaped"),
    "2-d data": (set_engrams("data", lambda t: t[:, :, 0]), r"'data'\] must be shaped"),
    "truncated counts": (shrink("induce_counts", 2), r"'induce_counts'\] must be shaped \[B, N, N\]"),
    "counts of fewer rows": (shrink("induce_counts", 0), r"'induce_counts'\] must be shaped"),
    "truncated lifespans": (shrink("lifespan", 1), r"'data'\] must be shaped"),
    "lifespans of fewer rows": (shrink("lifespan", 0), r"'lifespan'\] must be a tensor shaped \[B=2"),
    "truncated types": (shrink("engrams_types", 1), r"'engrams_types'\] must be shaped \[B, N\]"),
    "truncated ages": (shrink("age", 1), r"'age'\] must be shaped"),
    "truncated ids": (shrink("engram_ids", 1), r"'engram_ids'\] must be shaped"),
    "batch size contradicting the tensors": (
        set_engrams("batch_size", 3),
        r"'lifespan'\] must be a tensor shaped \[B=3",
    ),
    "hidden size contradicting the tensors": (
        set_engrams("hidden_dim", 7),
        r"'data'\] must be shaped .* \[2, \d+, 7\]",
    ),
    "bool batch size": (set_engrams("batch_size", True), r"'batch_size'\] must be an int >= 1"),
    "negative next id": (set_engrams("next_id", -1), r"'next_id'\] must be an int >= 0"),
    "integer data": (set_engrams("data", lambda t: t.long()), r"'data'\] must have a floating dtype"),
    "float types": (set_engrams("engrams_types", lambda t: t.float()), r"'engrams_types'\] must have a integer dtype"),
    "float counts": (set_engrams("induce_counts", lambda t: t.float()), r"'induce_counts'\] must have a integer"),
    "bool lifespans": (set_engrams("lifespan", lambda t: t > 0), r"'lifespan'\] must have a floating dtype"),
    "NaN in data": (put("data", (0, -1, 0), math.nan), r"'data'\] holds NaN or inf"),
    "inf lifespan": (put("lifespan", (1, -1), math.inf), r"'lifespan'\] holds NaN or inf"),
    "float64 data beyond float32": (
        set_engrams("data", lambda t: t.double().index_fill(2, torch.tensor([0]), 1e300)),
        r"'data'\] holds NaN or inf \(or values beyond float32's range",
    ),
    "unknown engram type": (put("engrams_types", (0, -1), 7), r"'engrams_types'\] .* must lie in \[0, 3\]"),
    "count below -1": (put("induce_counts", (0, -1, -1), -2), r"'induce_counts'\] must lie in \[-1, "),
    "duplicate ids": (put("engram_ids", (1, -1), 0), r"'engram_ids'\] must be distinct"),
    "id beyond next_id": (set_engrams("next_id", 1), r"'engram_ids'\] must lie in \[-1, 0\]"),
    "ages missing while tracked": (set_engrams("age", None), r"'age'\] must be a tensor \(track_age=True\)"),
    "unknown next call": (set_state("expected_call", "forward"), r"'expected_call'\] must be one of"),
    "half a step without engrams": (set_state("engrams", None), r"'expected_call'\] is 'adjust_lifespan_and_memories'"),
    "reminded missing mid-step": (set_state("reminded", None), r"'reminded'\] must be the \[B, R\] positions"),
    "reminded out of range": (set_state("reminded", lambda t: t + 100), r"'reminded'\] must lie in \[-1, "),
    "reminded of another batch size": (
        set_state("reminded", lambda t: t[:1]),
        r"'reminded'\] must be None or a tensor",
    ),
    "float reminded": (set_state("reminded", lambda t: t.float()), r"'reminded'\] must have a integer dtype"),
    "fired out of range": (set_state("fired", lambda t: t + 100), r"'fired'\] must lie in \[-1, "),
    "other settings": (lambda s: s["settings"].update(stm_capacity=5), "other settings.*stm_capacity"),
    "unknown setting": (lambda s: s["settings"].update(capacity=5), r"unknown settings \['capacity'\]"),
    "integer output dtype": (set_state("output_dtype", "torch.int64"), r"'output_dtype'\] must name a floating"),
    "histories missing": (drop("histories"), "state has no 'histories' but this Memoria keeps history"),
    "histories of another batch size": (set_state("histories", lambda h: h[:1]), r"'histories'\] must be a list of 2"),
    "malformed history": (set_state("histories", lambda h: [h[0], {"timestep": 1}]), r"'histories'\]\[1\]: not a"),
    "not a dict": (None, "state must be a dict"),
}


@pytest.mark.parametrize("change, message", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_bad_state_is_refused_naming_the_field_and_changes_nothing(change, message):
    memoria = mid_step()
    good = mid_step(seed=2).state_dict()
    bad = [good] if change is None else copy.deepcopy(good)
    if change is not None:
        change(bad)
    before = memoria.state_dict()
    with pytest.raises(ValueError, match=message):
        memoria.load_state_dict(bad)
    assert_equal_states(before, memoria.state_dict())
    memoria.load_state_dict(good)  # the memory still works, and a good state loads
    assert_equal_states(good, memoria.state_dict())


def test_state_round_trips_through_torch_save_with_weights_only_and_continues_identically():
    memoria = mid_step()
    buffer = io.BytesIO()
    torch.save(memoria.state_dict(), buffer)
    buffer.seek(0)
    restored = Memoria(**SETTINGS, **FLAGS)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert_equal_states(memoria.state_dict(), restored.state_dict())
    for m in (memoria, restored):
        indices = m._reminded
        m.adjust_lifespan_and_memories(indices, torch.ones(indices.shape))
        steps(m, 3, seed=5)
    assert_equal_states(memoria.state_dict(), restored.state_dict())
    assert restored.histories == memoria.histories


def test_history_window_is_not_a_setting_that_must_match():
    memoria = steps(Memoria(**SETTINGS, **FLAGS, history_window=2), 5)
    restored = Memoria(**SETTINGS, **FLAGS, history_window=1)
    restored.load_state_dict(memoria.state_dict())
    assert [h.first_timestep for h in restored.histories] == [4, 4]


def test_meta_device_is_refused_and_the_memory_stays():
    memoria = steps(Memoria(**SETTINGS), 3)
    before = memoria.state_dict()
    with pytest.raises(ValueError, match="device 'meta' holds no values"):
        memoria.to("meta")
    with pytest.raises(ValueError, match="device 'meta'"):
        Memoria(**SETTINGS, device="meta")
    assert memoria.device is None and memoria.store.device == torch.device("cpu")
    assert_equal_states(before, memoria.state_dict())


# ------------------------------------------------------------------------------------------ values as stored
def test_float64_data_beyond_float32_is_refused_unchanged():
    memoria = steps(Memoria(**SETTINGS), 3)
    before = memoria.state_dict()
    data = torch.rand(2, 3, 6, dtype=torch.float64)
    data[1, 0, 2] = 1e300  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"data contains NaN or inf as float32 \(rows \[1\]\)"):
        memoria.add_working_memory(data)
    assert_equal_states(before, memoria.state_dict())
    memoria.add_working_memory(data.clamp(max=1))  # and the step goes on


def test_lifespan_delta_overflowing_float32_is_refused_unchanged():
    memoria = steps(Memoria(**SETTINGS), 3)
    memoria.add_working_memory(torch.rand(2, 3, 6))
    _, indices = memoria.remind()
    before = memoria.state_dict()
    delta = torch.ones(indices.shape, dtype=torch.float64)
    delta[0, 0] = -1e39  # below float32's range
    with pytest.raises(ValueError, match="lifespan_delta contains NaN or inf as float32"):
        memoria.adjust_lifespan_and_memories(indices, delta)
    assert_equal_states(before, memoria.state_dict())
    memoria.adjust_lifespan_and_memories(indices, delta.clamp(min=0))


def test_initial_lifespan_beyond_float32_is_refused():
    with pytest.raises(ValueError, match="initial_lifespan must be a positive finite number"):
        Memoria(**{**SETTINGS, "initial_lifespan": 1e300})


# ------------------------------------------------------------------------------------------ constructor
@pytest.mark.parametrize(
    "make", [np.int64, np.int32, np.uint8, torch.tensor, lambda v: torch.tensor(v, dtype=torch.int16)]
)
def test_counts_may_be_numpy_integers_or_0d_integer_tensors(make):
    memoria = Memoria(*(make(v) for v in (3, 4, 2)), make(3), make(3), max_ltm_per_row=make(9), history_window=make(5))
    plain = Memoria(3, 4, 2, 3, 3, max_ltm_per_row=9, history_window=5)
    assert memoria._settings() == plain._settings()
    counts = ("num_reminded_stm", "stm_capacity", "ltm_search_depth", "num_final_ltms", "max_ltm_per_row")
    assert all(type(getattr(memoria, name)) is int for name in counts + ("history_window",))
    steps(memoria, 2)  # a state saved from it loads into the plain one
    plain.load_state_dict(memoria.state_dict())


@pytest.mark.parametrize(
    "value, error",
    [
        (np.bool_(True), TypeError),
        (torch.tensor(True), TypeError),
        (torch.tensor(2.0), TypeError),
        (np.float32(2.0), TypeError),
        (torch.tensor([2]), TypeError),
        (np.int64(-1), ValueError),
        (torch.tensor(0), ValueError),
    ],
    ids=repr,
)
def test_non_integer_or_negative_counts_are_refused_naming_the_argument(value, error):
    with pytest.raises(error, match="stm_capacity must be"):
        Memoria(3, value, 2, 3, 3)


def test_initial_lifespan_may_be_a_numpy_number_or_0d_tensor():
    assert Memoria(3, 4, 2, np.float32(2.5), 3).initial_lifespan == 2.5
    assert Memoria(3, 4, 2, torch.tensor(3), 3).initial_lifespan == 3
    with pytest.raises(TypeError, match="initial_lifespan must be a number"):
        Memoria(3, 4, 2, np.bool_(True), 3)


@pytest.mark.cuda
def test_nonfinite_check_does_not_wait_for_the_device():
    from benchmarks.counting import count
    from memoria.memoria import _refuse_nonfinite

    data = torch.rand(2, 3, 6, dtype=torch.float64, device="cuda")
    assert count(lambda: _refuse_nonfinite("data", data)).syncs == 0


@pytest.mark.cuda
def test_nonfinite_data_on_cuda_fails_at_the_next_synchronisation():
    """A device-side assert ends the process's CUDA context: run it in a child process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import torch; from memoria import Memoria\n"
        "m = Memoria(3, 4, 2, 3, 3, device='cuda')\n"
        "data = torch.rand(2, 3, 6, dtype=torch.float64, device='cuda'); data[0, 0, 0] = 1e300\n"
        "m.add_working_memory(data); torch.cuda.synchronize()\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0
    assert "data contains NaN or inf" in result.stderr or "device-side assert" in result.stderr
