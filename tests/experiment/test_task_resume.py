"""A killed run resumes exactly, for every task built on SegmentTask: a training process killed with SIGKILL and resumed
with --resume-from ends with the weights of the uninterrupted run, bit for bit (same machine, threads and versions).

The checkpoint holds the training loader's position in the epoch (ResumableLoader) and every process's random
generators (SegmentTask); last.ckpt is written after each validation and every --checkpoint-every-steps /
--checkpoint-every-minutes in between (LastCheckpoint).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from test_classification_scripts import tiny_setup  # noqa: F401  (a fixture)
from test_experiment_scripts import run_sorting_args
from test_language_modeling_resume import RecordRank, same_state

from experiment.__main__ import main
from experiment.datasets.resumable import ResumableLoader, ResumableSampler
from experiment.tasks import SortingDataModule, SortingTask
from experiment.tasks.base import RESUME_STATE_KEY, split_loader
from experiment.training import LastCheckpoint
from tests.experiment.tiny import quiet_trainer

ROOT = Path(__file__).resolve().parents[2]
DROPOUT = ["--config-override", "resid_pdrop=0.1", "--config-override", "embd_pdrop=0.1"]  # draws every step

# Runs the command line in a process that SIGKILLs itself when training reaches step argv[1] (before anything that
# step would write), as `kill -9` would.
KILLED = textwrap.dedent("""
    import os, signal, sys
    import torch
    from lightning.pytorch.callbacks import Callback
    import experiment.training as training

    kill_at = int(sys.argv[1])

    class Kill(Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    build_trainer = training.build_trainer
    training.build_trainer = lambda settings, task, extra=(): build_trainer(settings, task, [*extra, Kill()])
    from experiment.__main__ import main

    main(sys.argv[2:])
    """)


def run_killed(kill_at: int, argv: list) -> subprocess.CompletedProcess:
    """Runs ``python -m experiment argv`` in a new process killed by SIGKILL at step ``kill_at``."""
    return subprocess.run(
        [sys.executable, "-c", KILLED, str(kill_at), *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def weights(checkpoint: Path) -> dict:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(resumed: Path, straight: Path) -> None:
    """Every parameter, buffer and memory state of the two checkpoints is equal, bit for bit."""
    a, b = weights(resumed), weights(straight)
    assert a.keys() == b.keys()
    different = [key for key in a if not same_state(a[key], b[key])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"


def kill_and_resume(argv_for, kill_at: int, saved_at: int, tmp_path: Path) -> None:
    """Trains uninterrupted into ``straight``; trains into ``killed`` killed at step ``kill_at``, whose last.ckpt then
    holds step ``saved_at``; resumes it from there; checks the final weights and test metrics are the same."""
    main(argv_for(tmp_path / "straight"))
    killed = run_killed(kill_at, argv_for(tmp_path / "killed"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == saved_at
    main([*argv_for(tmp_path / "killed"), f"--resume-from={last}"])
    assert_same_weights(
        tmp_path / "killed" / "checkpoints" / "final.ckpt", tmp_path / "straight" / "checkpoints" / "final.ckpt"
    )
    results = [json.loads((tmp_path / run / "results.json").read_text()) for run in ("straight", "killed")]
    assert results[0]["test"] == results[1]["test"] and results[0]["steps"] == results[1]["steps"]


def test_a_killed_sorting_run_resumes_to_the_weights_of_the_uninterrupted_run(
    tiny_data_file, tiny_config_files, tmp_path
):
    def argv(output_dir):  # 16 examples in batches of 4: 4 steps an epoch, validations at steps 4 and 8
        return [
            "train",
            "sorting",
            f"--data={tiny_data_file}",
            f"--model-config={tiny_config_files['memoria']}",
            f"--output-dir={output_dir}",
            *("--segment-length=8", "--batch-size=4", "--eval-batch-size=8", "--max-steps=10"),
            *("--val-check-interval=4", "--checkpoint-every-steps=3", "--learning-rate=3e-3", "--threads=1"),
            *("--accelerator=cpu", "--devices=1", "--no-progress-bar", "--progress-every=0", *DROPOUT),
        ]

    # killed in the second epoch, after last.ckpt of step 6: the resumed run starts mid-epoch, after a validation
    # (whose Memoria ties drew from torch's generator) and in an epoch whose order is not the first's
    kill_and_resume(argv, kill_at=7, saved_at=6, tmp_path=tmp_path)


def test_a_killed_classification_run_resumes_to_the_weights_of_the_uninterrupted_run(
    tiny_setup, tmp_path
):  # noqa: F811
    data, tokenizer, configs = tiny_setup

    def argv(output_dir):  # 8 documents in batches of 2: 4 steps an epoch; BERT's dropout draws every step
        return [
            *("train", "classification", "--dataset=json", f"--data={data}", f"--model-config={configs['memoria']}"),
            *(f"--tokenizer={tokenizer}", f"--output-dir={output_dir}", "--segment-length=8", "--batch-size=2"),
            *("--eval-batch-size=4", "--max-steps=7", "--val-check-interval=2", "--checkpoint-every-steps=5"),
            *("--learning-rate=1e-3", "--threads=1", "--accelerator=cpu", "--devices=1", "--no-progress-bar"),
        ]

    kill_and_resume(argv, kill_at=6, saved_at=5, tmp_path=tmp_path)


def test_a_killed_comparison_resumes_its_run_from_the_periodic_checkpoint_to_the_same_results(tmp_path, capsys):
    def argv(output_dir):
        return ["compare", "sorting", *run_sorting_args(output_dir, "--seeds=1", "--models", "transformer")] + [
            *("--max-steps=5", "--checkpoint-every-steps=3", "--val-check-interval=4", "--num-train=16"),
        ]

    main(argv(tmp_path / "straight"))
    killed = run_killed(4, argv(tmp_path / "killed"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    capsys.readouterr()
    main(argv(tmp_path / "killed"))
    run = Path("T16") / "transformer-seed1"
    assert f"resuming from {tmp_path / 'killed' / run / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert_same_weights(
        tmp_path / "killed" / run / "checkpoints" / "final.ckpt",
        tmp_path / "straight" / run / "checkpoints" / "final.ckpt",
    )
    rows = [json.loads((tmp_path / name / "comparison.json").read_text()) for name in ("straight", "killed")]
    assert [row for row in rows[0] if row["metric"] != "step_seconds"] == [
        row for row in rows[1] if row["metric"] != "step_seconds"
    ]


# ---- the mechanism, through Lightning alone ----------------------------------------------------------------------


def fit_sorting(data_file, config, directory, ckpt_path=None, max_steps=7, validate=True):
    """Trains a SortingTask for ``max_steps`` (4 steps an epoch; validating every 2 with ``validate``), saving every
    step's checkpoint under ``directory`` after anything that step does; returns the final state_dict."""
    L.seed_everything(5, verbose=False)
    task = SortingTask({**config, "resid_pdrop": 0.1}, segment_length=8, learning_rate=3e-3)
    trainer = quiet_trainer(
        max_steps=max_steps,
        limit_val_batches=1 if validate else 0,
        val_check_interval=2 if validate else None,
        callbacks=[EveryStep(directory)],
    )
    trainer.fit(task, datamodule=SortingDataModule(str(data_file), 4, 4), ckpt_path=ckpt_path, weights_only=True)
    return task.state_dict()


class EveryStep(LastCheckpoint):
    """LastCheckpoint's writes at every step but the last (after the step's validation, if it has one), each kept as
    ``step=<N>.ckpt``."""

    def __init__(self, directory: Path) -> None:
        super().__init__(Path(directory) / "last.ckpt", ModelCheckpoint(save_top_k=0), steps=1)

    def _write(self, trainer, link_to=None) -> None:
        self.path = self.path.with_name(f"step={trainer.global_step}.ckpt")
        super()._write(trainer)


@pytest.fixture
def memoria_fields(tiny_config_files):
    return json.loads(tiny_config_files["memoria"].read_text())


def test_every_checkpoint_of_a_run_resumes_to_its_final_weights(memoria_fields, tiny_data_file, tmp_path):
    final = fit_sorting(tiny_data_file, memoria_fields, tmp_path / "straight")
    assert sorted(path.name for path in (tmp_path / "straight").iterdir()) == [f"step={n}.ckpt" for n in range(1, 7)]
    for step in (1, 2, 4, 5):  # the first step, after a validation, at an epoch's end, in the second epoch
        resumed = fit_sorting(
            tiny_data_file,
            memoria_fields,
            tmp_path / f"from{step}",
            ckpt_path=tmp_path / "straight" / f"step={step}.ckpt",
        )
        different = [key for key in final if not same_state(final[key], resumed[key])]
        assert not different, f"resumed from step {step}: {len(different)} of {len(final)} tensors differ"


def test_the_checkpoint_holds_the_loader_position_and_every_random_generator(memoria_fields, tiny_data_file, tmp_path):
    fit_sorting(tiny_data_file, memoria_fields, tmp_path, max_steps=6, validate=False)
    saved = torch.load(tmp_path / "step=5.ckpt", weights_only=True)
    (position,) = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert position == {"epoch": 1, "batches": 1, "batch_size": 4, "examples": 16, "processes": 1}
    (states,) = saved[RESUME_STATE_KEY]["processes"]
    assert set(states) == {"torch", "cuda", "numpy", "python"}


@pytest.mark.parametrize("forget", ["random generators", "loader position"])
def test_without_either_part_of_the_state_the_resumed_run_differs(forget, memoria_fields, tiny_data_file, tmp_path):
    final = fit_sorting(tiny_data_file, memoria_fields, tmp_path / "straight", validate=False)
    saved = torch.load(tmp_path / "straight" / "step=5.ckpt", weights_only=True)
    if forget == "random generators":
        del saved[RESUME_STATE_KEY]  # dropout then draws other numbers than the uninterrupted run's
    else:
        del saved["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the epoch then restarts from its start
    torch.save(saved, tmp_path / "forgetful.ckpt")
    resumed = fit_sorting(
        tiny_data_file, memoria_fields, tmp_path / "resumed", tmp_path / "forgetful.ckpt", validate=False
    )
    assert not all(same_state(final[key], resumed[key]) for key in final)


# ---- the loader ------------------------------------------------------------------------------------------------------


def indices_of(loader) -> list:
    return [batch.tolist() for batch in loader]


def test_the_training_order_depends_on_the_seed_and_the_epoch_only():
    dataset = list(range(10))

    def order(seed, epoch):
        loader = split_loader(None, dataset, 3, True, seed=seed)
        loader.sampler.set_epoch(epoch)
        torch.manual_seed(epoch * 7)  # torch's generator plays no part
        return indices_of(loader)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)
    assert sorted(sum(order(1, 0), [])) == dataset


@pytest.mark.parametrize("workers", [0, 2])
def test_a_loaded_position_skips_the_batches_handed_out_in_that_epoch_only(workers):
    dataset = list(range(10))
    loader = split_loader(None, dataset, 3, True, num_workers=workers, seed=4)
    loader.sampler.set_epoch(2)
    whole = indices_of(loader)
    iterator = iter(loader)
    next(iterator)  # workers have read further ahead: the position counts the batches handed out
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 1, "batch_size": 3, "examples": 10, "processes": 1}
    resumed = split_loader(None, dataset, 3, True, seed=4)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    assert indices_of(resumed) == whole[1:]
    assert indices_of(resumed) == whole  # the next pass of the same epoch is whole again
    other = split_loader(None, dataset, 3, True, seed=4)
    other.load_state_dict(state)
    other.sampler.set_epoch(3)  # the checkpoint's epoch is over
    assert len(indices_of(other)) == 4


def test_a_position_in_an_epoch_read_otherwise_is_refused():
    dataset = list(range(10))
    state = {"epoch": 0, "batches": 2, "batch_size": 3, "examples": 10, "processes": 1}
    with pytest.raises(ValueError, match=r"written 2 batches into an epoch read with batch_size 3.*batch_size 2"):
        split_loader(None, dataset, 2, True).load_state_dict(state)
    with pytest.raises(ValueError, match=r"lacks \['processes'\]"):
        split_loader(None, dataset, 3, True).load_state_dict({k: v for k, v in state.items() if k != "processes"})
    with pytest.raises(ValueError, match=r"position 9 is not in 0..4"):
        split_loader(None, dataset, 3, True).load_state_dict({**state, "batches": 9})
    split_loader(None, dataset, 2, True).load_state_dict({**state, "batches": 4})  # at an epoch's end: any reading
    with pytest.raises(TypeError, match="ResumableSampler"):
        ResumableLoader(dataset, 2, torch.utils.data.SequentialSampler(dataset))


def test_under_ddp_each_process_reads_its_share_of_the_same_order():
    dataset = list(range(10))
    shares = [ResumableSampler(dataset, num_replicas=2, rank=rank, seed=3) for rank in range(2)]
    orders = [list(share) for share in shares]
    assert len(orders[0]) == len(orders[1]) == 5 and sorted(orders[0] + orders[1]) == dataset


# ---- last.ckpt -------------------------------------------------------------------------------------------------------


def test_last_ckpt_always_holds_the_latest_validation_even_when_it_was_not_the_best(
    tiny_data_file, tiny_config_files, tmp_path
):
    output_dir = tmp_path / "run"
    main(
        [
            *("train", "sorting", f"--data={tiny_data_file}", f"--model-config={tiny_config_files['baseline']}"),
            *(f"--output-dir={output_dir}", "--segment-length=8", "--batch-size=4", "--max-steps=9"),
            *("--val-check-interval=2", "--learning-rate=0", "--accelerator=cpu", "--no-progress-bar"),
            "--checkpoint-every-minutes=0",
        ]
    )
    checkpoints = output_dir / "checkpoints"
    step = lambda name: torch.load(checkpoints / name, weights_only=True)["global_step"]  # noqa: E731
    # learning rate 0: the accuracy never improves on the first validation's, which stays the best
    assert [path.name for path in checkpoints.glob("best-*.ckpt")] == ["best-step=2.ckpt"]
    assert step("last.ckpt") == 8 and step("final.ckpt") == 9
    assert not list(checkpoints.glob("*.partial"))


def test_a_checkpoint_is_written_every_few_minutes_between_validations(tmp_path, memoria_fields, tiny_data_file):
    steps = []

    class Record(Callback):
        def on_train_batch_end(self, trainer, *args) -> None:
            steps.append(last.saved_step)

    best = ModelCheckpoint(tmp_path, save_top_k=0)
    last = LastCheckpoint(tmp_path / "last.ckpt", best, minutes=1e-9)
    L.seed_everything(0, verbose=False)
    trainer = quiet_trainer(
        max_steps=5,
        limit_val_batches=1,
        val_check_interval=3,
        callbacks=[best, last, Record()],
    )
    trainer.fit(SortingTask(memoria_fields, segment_length=8), datamodule=SortingDataModule(str(tiny_data_file), 4, 4))
    # Record runs before the checkpoint callbacks: it sees the previous step's write
    assert steps == [-1, 1, 2, 3, 4]  # step 3 after its validation; none at the last step
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4
    with pytest.raises(ValueError, match="at least 0"):
        LastCheckpoint(tmp_path / "last.ckpt", best, minutes=-1)


# ---- DDP -------------------------------------------------------------------------------------------------------------


def fit_sorting_ddp(data_file, config, directory, ckpt_path=None):
    """Trains a SortingTask on two processes (gloo) for 5 steps (2 an epoch: 16 examples, 4 a batch and process),
    keeping every step's checkpoint; returns each process's final weights."""
    directory.mkdir(parents=True, exist_ok=True)
    L.seed_everything(5, verbose=False)
    task = SortingTask({**config, "resid_pdrop": 0.1}, segment_length=8, learning_rate=3e-3)
    trainer = quiet_trainer(
        devices=2,
        strategy="ddp_fork_find_unused_parameters_true",  # forked: no second import of torch
        max_steps=5,
        limit_val_batches=0,
        callbacks=[EveryStep(directory), RecordRank(str(directory))],
    )
    trainer.fit(task, datamodule=SortingDataModule(str(data_file), 4, 4), ckpt_path=ckpt_path, weights_only=True)
    return [torch.load(directory / f"rank{rank}.pt", weights_only=True)["weights"] for rank in range(2)]


def test_under_ddp_each_process_resumes_its_share_and_its_generators(memoria_fields, tiny_data_file, tmp_path):
    straight = fit_sorting_ddp(tiny_data_file, memoria_fields, tmp_path / "straight")
    saved = torch.load(tmp_path / "straight" / "step=3.ckpt", weights_only=True)
    assert len(saved[RESUME_STATE_KEY]["processes"]) == 2
    resumed = fit_sorting_ddp(
        tiny_data_file, memoria_fields, tmp_path / "resumed", tmp_path / "straight" / "step=3.ckpt"
    )
    for rank in range(2):
        different = [key for key in straight[rank] if not same_state(straight[rank][key], resumed[rank][key])]
        assert not different, f"process {rank}: {len(different)} tensors differ"


def test_a_negative_checkpoint_interval_is_refused_before_anything_is_written(
    tiny_data_file, tiny_config_files, tmp_path
):
    for option in ("--checkpoint-every-minutes=-1", "--checkpoint-every-steps=-2"):
        with pytest.raises(ValueError, match=f"{option.split('=')[0]} must be at least 0"):
            main(
                [
                    *(
                        "train",
                        "sorting",
                        f"--data={tiny_data_file}",
                        f"--model-config={tiny_config_files['baseline']}",
                    ),
                    *(f"--output-dir={tmp_path / 'run'}", "--segment-length=8", "--accelerator=cpu", option),
                ]
            )
    assert not (tmp_path / "run").exists()
