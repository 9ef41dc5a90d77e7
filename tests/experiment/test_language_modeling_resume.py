"""Resuming language-model training in the middle of an epoch: the resumed run takes the steps the uninterrupted run
took (same next loss, same final weights), because the checkpoint holds the stream position, the carried memory and torch's random generator.
"""

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from test_classification_models import MEMORIA_TYPES, PLAIN_TYPES, make_model, tokens
from test_language_modeling_task import TINY, TINY_MEMORIA, TINY_RMT, TINY_XL

from experiment.models.segment_recurrent import SegmentRecurrentModel
from experiment.tasks.language_modeling import (
    STREAM_STATE_KEY,
    LanguageModelingDataModule,
    LanguageModelingTask,
    WindowStream,
)
from tests.experiment.tiny import quiet_trainer

NO_DROPOUT = {"embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}
MODELS = {
    "memoria": TINY_MEMORIA,
    "transfo_xl": TINY_XL,
    "rmt": TINY_RMT,
    "compressive": {
        "model_type": "memoria_compressive_transformer",
        **TINY,
        **NO_DROPOUT,
        "mem_len": 4,
        "cmem_len": 2,
        "compression_rate": 2,
    },
    "infinity_former": {
        "model_type": "infinity_former",
        **TINY,
        **NO_DROPOUT,
        "ltm_num_basis": 8,
        "ltm_basis_widths": [0.1, 0.2],
    },
    "gpt2_segment": {"model_type": "gpt2_segment", **TINY, **NO_DROPOUT},
}
STEPS, SAVED_AT = 5, 2  # train 5 steps; the resumed runs start from the checkpoint of step 2


class RecordLosses(Callback):
    """Keeps the training loss of every step."""

    def __init__(self) -> None:
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def same_state(a, b) -> bool:
    """Whether two entries of a ``state_dict`` are equal: tensors bit for bit, a memory's extra state (plain
    containers of tensors) entry by entry."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


def fit(config, directory, ckpt_path=None, validate=False, streams=2):
    """Trains ``config`` for STEPS steps on a fixed two-stream corpus (from ``ckpt_path`` when given), saving a
    checkpoint every SAVED_AT steps under ``directory`` (with ``validate``: validating every SAVED_AT steps and
    saving after each validation, as train_language_modeling does); returns the per-step losses and final weights."""
    rng = np.random.default_rng(0)
    splits = {
        split: [rng.integers(0, 20, size=150), rng.integers(0, 20, size=60)] for split in ("train", "valid", "test")
    }
    datamodule = LanguageModelingDataModule(splits, streams, 2, 4, segments_per_batch=2, eos_id=0)
    torch.manual_seed(0)
    task = LanguageModelingTask(config, segment_length=4, learning_rate=1e-2, warmup_ratio=0.0)
    losses = RecordLosses()
    trainer = quiet_trainer(
        max_steps=STEPS,
        limit_val_batches=2 if validate else 0,
        val_check_interval=SAVED_AT if validate else None,
        callbacks=[
            losses,
            ModelCheckpoint(
                dirpath=directory, filename="{step}", every_n_train_steps=None if validate else SAVED_AT, save_top_k=-1
            ),
        ],
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return losses.losses, task.state_dict()


@pytest.mark.parametrize("name", list(MODELS))
def test_a_run_resumed_mid_epoch_takes_the_steps_of_the_uninterrupted_run(name, tmp_path):
    straight, final = fit(MODELS[name], tmp_path / "straight")
    assert len(straight) == STEPS
    checkpoint = tmp_path / "straight" / f"step={SAVED_AT}.ckpt"
    resumed, resumed_final = fit(MODELS[name], tmp_path / "resumed", ckpt_path=checkpoint)
    assert len(resumed) == STEPS - SAVED_AT
    assert resumed == straight[SAVED_AT:]  # bit for bit: same data, memory, weights, optimiser and random draws
    for key, value in final.items():
        assert same_state(resumed_final[key], value), key


def test_a_run_resumed_from_a_checkpoint_saved_at_a_validation_takes_the_uninterrupted_steps(tmp_path):
    straight, final = fit(TINY_MEMORIA, tmp_path / "straight", validate=True)
    resumed, resumed_final = fit(
        TINY_MEMORIA, tmp_path / "resumed", ckpt_path=tmp_path / "straight" / f"step={SAVED_AT}.ckpt", validate=True
    )
    assert resumed == straight[SAVED_AT:]
    for key, value in final.items():
        assert same_state(resumed_final[key], value), key


def test_resuming_mid_epoch_with_other_streams_is_refused(tmp_path):
    fit(TINY_XL, tmp_path / "straight")
    with pytest.raises(ValueError, match=r"windows shaped \[2, 8\].*this run reads \[3, 8\]"):
        fit(TINY_XL, tmp_path / "resumed", ckpt_path=tmp_path / "straight" / f"step={SAVED_AT}.ckpt", streams=3)


@pytest.mark.parametrize("name", ["memoria", "transfo_xl"])
def test_the_restored_memory_is_what_makes_the_next_loss_equal(name, tmp_path):
    straight, _ = fit(MODELS[name], tmp_path / "straight")
    saved = torch.load(tmp_path / "straight" / f"step={SAVED_AT}.ckpt", weights_only=True)
    assert saved[STREAM_STATE_KEY]["train_windows_done"] == SAVED_AT
    fresh = LanguageModelingTask(MODELS[name], segment_length=4).model
    saved[STREAM_STATE_KEY]["processes"][0]["memory"] = fresh.memory_state()  # the position kept, the memory forgotten
    torch.save(saved, tmp_path / "forgetful.ckpt")
    forgetful, _ = fit(MODELS[name], tmp_path / "resumed", ckpt_path=tmp_path / "forgetful.ckpt")
    assert forgetful[0] != pytest.approx(straight[SAVED_AT], rel=1e-4)


def test_window_stream_skips_only_on_the_next_pass():
    rng = np.random.default_rng(1)
    splits = {split: [rng.integers(0, 20, size=100)] for split in ("train", "valid", "test")}
    stream = LanguageModelingDataModule(splits, 2, 2, 4).train_dataloader().dataset
    assert isinstance(stream, WindowStream)
    every = [batch["input_ids"] for batch in stream]
    stream.skip_windows(3)
    assert [batch["input_ids"].tolist() for batch in stream] == [ids.tolist() for ids in every[3:]]
    assert len(list(stream)) == len(every)
    with pytest.raises(ValueError, match="count must be in"):
        stream.skip_windows(len(every) + 1)


class RecordRank(Callback):
    """Writes each process's per-step losses and final weights to ``<directory>/rank<r>.pt``."""

    def __init__(self, directory) -> None:
        self.directory, self.losses = directory, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(
            {"losses": self.losses, "weights": pl_module.state_dict()}, f"{self.directory}/rank{trainer.global_rank}.pt"
        )


def fit_ddp(directory, ckpt_path=None):
    """Trains Memoria on two processes (gloo) for STEPS steps, checkpointing every SAVED_AT steps."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(5)
    splits = {split: [rng.integers(0, 20, size=300)] for split in ("train", "valid", "test")}
    datamodule = LanguageModelingDataModule(splits, 2, 2, 4, segments_per_batch=2)
    torch.manual_seed(0)
    task = LanguageModelingTask(TINY_MEMORIA, segment_length=4, learning_rate=1e-2, warmup_ratio=0.0)
    trainer = quiet_trainer(
        devices=2,
        strategy="ddp_spawn",
        max_steps=STEPS,
        limit_val_batches=0,
        callbacks=[
            RecordRank(str(directory)),
            ModelCheckpoint(dirpath=directory, filename="{step}", every_n_train_steps=SAVED_AT, save_top_k=-1),
        ],
    )
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return [torch.load(directory / f"rank{rank}.pt", weights_only=True) for rank in range(2)]


def test_under_ddp_each_process_resumes_its_own_streams_and_memory(tmp_path):
    straight = fit_ddp(tmp_path / "straight")
    saved = torch.load(tmp_path / "straight" / f"step={SAVED_AT}.ckpt", weights_only=True)
    assert len(saved[STREAM_STATE_KEY]["processes"]) == 2
    resumed = fit_ddp(tmp_path / "resumed", ckpt_path=tmp_path / "straight" / f"step={SAVED_AT}.ckpt")
    assert straight[0]["losses"][SAVED_AT:] != straight[1]["losses"][SAVED_AT:]  # the ranks read different streams
    for rank in range(2):
        assert resumed[rank]["losses"] == straight[rank]["losses"][SAVED_AT:]
        for key, value in straight[rank]["weights"].items():
            assert same_state(resumed[rank]["weights"][key], value), key


def lm_model(name):
    torch.manual_seed(0)
    return LanguageModelingTask(MODELS[name], segment_length=4).model.eval(), lambda seed: torch.from_numpy(
        np.random.default_rng(seed).integers(0, 20, size=(2, 4))
    )


def encoder_model(model_type):
    return make_model(model_type), lambda seed: tokens(seed=seed)


@pytest.mark.parametrize(
    "build, name",
    [(lm_model, name) for name in MODELS] + [(encoder_model, name) for name in MEMORIA_TYPES + PLAIN_TYPES],
)
def test_memory_state_restores_what_the_next_segment_sees(build, name):
    model, segment = build(name)

    def next_logits():
        torch.manual_seed(1)  # Memoria's tie-breaking noise
        return model(input_ids=segment(3)).logits

    with torch.no_grad():
        model(input_ids=segment(1))
        model(input_ids=segment(2))
        state = model.memory_state()
        expected = next_logits()
        model.reset_memory()
        model(input_ids=segment(4))  # another memory, replaced by the loaded one
        model.load_memory_state(state)
        assert torch.equal(next_logits(), expected)


def test_memory_state_rejects_what_does_not_fit():
    model = LanguageModelingTask(TINY_XL, segment_length=4).model
    with pytest.raises(ValueError, match="memory state holds"):
        model.load_memory_state({"something": {}})

    class Undeclared(SegmentRecurrentModel):
        def reset_memory(self, rows=None) -> None:
            pass

    with pytest.raises(NotImplementedError, match="does not declare memory_attributes"):
        Undeclared().memory_state()
