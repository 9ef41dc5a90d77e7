"""No file a user passes in runs code: each command that loads a checkpoint refuses a crafted one, and nothing in it
runs (the marker file its pickle would create stays absent)."""

import io
import pickle
from pathlib import Path

import pytest
import torch

from experiment.__main__ import main
from experiment.models.segment_recurrent import SegmentRecurrentModel


class CreatesMarker:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if the loader ran the pickle's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def crafted_checkpoint(tmp_path: Path) -> tuple:
    """A Lightning-looking checkpoint whose hyper-parameters hold a CreatesMarker, and the marker's path."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "global_step": 0, "hyper_parameters": {"x": CreatesMarker(marker)}}, path)
    return path, marker


def test_resume_from_a_crafted_checkpoint_is_refused_and_runs_nothing(tiny_data_file, tiny_config_files, tmp_path):
    checkpoint, marker = crafted_checkpoint(tmp_path)
    arguments = [
        f"--data={tiny_data_file}",
        f"--model-config={tiny_config_files['baseline']}",
        f"--output-dir={tmp_path / 'run'}",
        "--segment-length=8",
        "--max-steps=1",
        "--accelerator=cpu",
        f"--resume-from={checkpoint}",
    ]
    with pytest.raises(ValueError, match=r"--resume-from .*crafted\.ckpt holds objects other than tensors"):
        main(["train", "sorting", *arguments])
    assert not marker.exists()


@pytest.mark.parametrize(
    "task, arguments",
    [
        ("sorting", ["--data=unused.json"]),
        ("language-modeling", []),
        ("classification", ["--dataset=json", "--data=unused.json", "--tokenizer=bytes"]),
    ],
)
def test_evaluating_a_crafted_checkpoint_is_refused_and_runs_nothing(task, arguments, tmp_path):
    checkpoint, marker = crafted_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r"--checkpoint .*crafted\.ckpt holds objects other than tensors"):
        main(["eval", task, f"--checkpoint={checkpoint}", "--accelerator=cpu", *arguments])
    assert not marker.exists()


class Carries(torch.nn.Linear, SegmentRecurrentModel):
    """A model carrying one attribute, ``memory``."""

    memory_attributes = ("memory",)

    def __init__(self) -> None:
        super().__init__(2, 2)
        self.memory = None

    def reset_memory(self, rows=None) -> None:
        self.memory = None


def test_a_memory_state_of_pickled_bytes_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save(CreatesMarker(marker), buffer)  # what earlier versions stored, and loaded with weights_only=False
    # the bytes pass torch.load(weights_only=True) inside a checkpoint; load_memory_state must not unpickle them
    path = tmp_path / "state.pt"
    torch.save({"memory": {"value": buffer.getvalue()}}, path)
    state = torch.load(path, weights_only=True)
    model = Carries()
    with pytest.raises(ValueError, match="memory state of memory holds 'bytes'"):
        model.load_memory_state(state)
    assert not marker.exists() and model.memory is None


def test_a_memory_state_naming_an_unregistered_class_is_refused():
    model = Carries()
    with pytest.raises(ValueError, match="holds 'builtins.open'"):
        model.load_memory_state({"memory": {"value": {"type": "builtins.open", "fields": {"file": "x"}}}})
    assert model.memory is None


def test_a_memory_state_is_plain_values_that_load_with_weights_only(tmp_path):
    model = Carries()
    model.memory = {"hidden": [torch.ones(2, 3), (1, None)], "steps": 4}
    path = tmp_path / "state.pt"
    torch.save(model.memory_state(), path)
    restored = Carries()
    restored.load_memory_state(torch.load(path, weights_only=True))
    assert torch.equal(restored.memory["hidden"][0], torch.ones(2, 3))
    assert restored.memory["hidden"][1] == (1, None) and restored.memory["steps"] == 4


def test_saving_an_object_of_an_unregistered_class_in_a_memory_state_is_refused():
    model = Carries()
    model.memory = pickle  # a module: neither a tensor, a plain value nor a registered class
    with pytest.raises(TypeError, match="memory attribute memory holds a builtins.module"):
        model.memory_state()
