"""The sorting commands: --help, and a tiny run from data generation through training, evaluation and comparison."""

import json

import pytest
import torch

from experiment.__main__ import main
from experiment.recipes import TASKS, load_task
from experiment.recipes.compare import run_settings
from experiment.recipes.sorting import TASK, SortingCompare
from tests.experiment.tiny import command

make_sorting_data = command("prepare", "sorting")
train_sorting = command("train", "sorting")
eval_sorting = command("eval", "sorting")
compare_sorting = command("compare", "sorting")


@pytest.mark.parametrize("verb, task", [(verb, task) for task in TASKS for verb in load_task(task).verbs])
def test_help_shows_the_defaults(verb, task, capsys):
    with pytest.raises(SystemExit) as exited:
        main([verb, task, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "usage" in text and "(default:" in text


def test_make_sorting_data_writes_the_splits(tmp_path):
    path = tmp_path / "data.json"
    make_sorting_data(
        ["--output", str(path), "--sequence-length", "40", "--vocab-size", "5", "--num-train", "3", "--num-dev", "2"]
    )
    payload = json.loads(path.read_text())
    assert (payload["prompt_length"], payload["vocab_size"]) == (40, 6)
    assert len(payload["train"]) == 3 and len(payload["dev"]) == 2
    assert len(payload["train"][0]["prompt_ids"]) == 41 and len(payload["train"][0]["target_ids"]) == 5


def train_args(data, config, output_dir, *extra) -> list:
    return [
        f"--data={data}",
        f"--model-config={config}",
        f"--output-dir={output_dir}",
        "--segment-length=8",
        "--batch-size=4",
        "--max-steps=3",
        "--val-check-interval=2",
        "--warmup-ratio=0.3",
        "--eval-batch-size=4",
        "--accelerator=cpu",
        "--devices=1",
        "--no-progress-bar",
        *extra,
    ]


@pytest.mark.parametrize("model", ["memoria", "baseline"])
def test_train_resume_and_evaluate(model, tiny_data_file, tiny_config_files, tmp_path, capsys):
    output_dir = tmp_path / model
    train_sorting(train_args(tiny_data_file, tiny_config_files[model], output_dir, "--progress-every=2"))
    printed = capsys.readouterr().out
    assert "step 2/3, loss " in printed and "step 1/3" not in printed  # a line every 2 steps without a terminal
    results = json.loads((output_dir / "results.json").read_text())
    assert results["steps"] == 3 and 0.0 <= results["test"]["accuracy"] <= 1.0
    assert 0.0 <= results["test_best"]["accuracy"] <= 1.0 and results["test"]["loss"] > 0
    checkpoints = {path.name for path in (output_dir / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints)
    assert list((output_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert (output_dir / "model" / "config.json").exists()
    # validation ran at step 2 only: the headline test is of the weights at step 3, saved as final.ckpt
    final = output_dir / "checkpoints" / "final.ckpt"
    assert results["last_checkpoint"] == str(final)
    assert torch.load(final, map_location="cpu", weights_only=True)["global_step"] == 3
    capsys.readouterr()
    eval_sorting(["--checkpoint", str(final), "--data", str(tiny_data_file), "--batch-size", "4"])
    assert (
        f"test accuracy {results['test']['accuracy']:.4f}, loss {results['test']['loss']:.4f}"
        in capsys.readouterr().out
    )

    last = output_dir / "checkpoints" / "last.ckpt"
    train_sorting(
        train_args(tiny_data_file, tiny_config_files[model], output_dir, "--max-steps=5", f"--resume-from={last}")
    )
    assert json.loads((output_dir / "results.json").read_text())["steps"] == 5

    capsys.readouterr()
    eval_sorting(["--checkpoint", str(last), "--data", str(tiny_data_file), "--batch-size", "4", "--accelerator=cpu"])
    assert "test accuracy" in capsys.readouterr().out


def run_sorting_args(tmp_path, *extra: str) -> list:
    return [
        f"--output-dir={tmp_path}",
        "--sequence-lengths=16",
        "--segment-length=8",
        "--vocab-size=4",
        "--num-train=8",
        "--num-dev=4",
        "--num-test=4",
        "--max-steps=2",
        "--batch-size=4",
        "--val-check-interval=2",
        "--eval-batch-size=4",
        *extra,
    ]


def test_compare_runs_every_model_writes_tidy_rows_and_reads_finished_runs_back(tmp_path, capsys):
    compare_sorting(run_sorting_args(tmp_path, "--seeds=1"))
    output = capsys.readouterr().out
    table = output.split("### T16")[-1]
    for key in TASK.default_models:
        assert f"| {key} " in table
    assert "vs transformer" in table and "Better:" in table and f"Outputs: {tmp_path}" in table
    assert (
        "count the last segment's symbols" in table and "count the whole sequence, then emit by count: 1.0000" in table
    )
    assert "memoryless floor (uniform over the symbols not yet emitted, H_K / K): 0.5208" in table  # H_4 / 4
    assert len(list(tmp_path.glob("T16/*/results.json"))) == len(TASK.default_models)
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert set(rows[0]) == {"task", "model", "ablation", "seed", "setting", "metric", "value"}
    assert {row["metric"] for row in rows} == {"accuracy", "loss", "step_seconds", "parameters", "token_parameters"}
    testing_only = [key for key in TASK.default_models if TASK.models[key].evaluates]
    assert testing_only == ["memoria:erased_at_eval", "memoria:working_memory_only"]
    assert len(rows) == 5 * len(TASK.default_models) - len(testing_only)  # an entry that only tests: no step time
    erased = [row for row in rows if row["ablation"] == "erased_every_segment" and row["metric"] == "accuracy"]
    assert len(erased) == 1 and erased[0]["model"] == "memoria" and erased[0]["setting"] == "T16"
    assert (tmp_path / "comparison.md").read_text().strip() == output[output.index("### T16") :].strip()

    compare_sorting(run_sorting_args(tmp_path, "--seeds=1", "--models", "memoria:erased_every_segment", "transformer"))
    again = capsys.readouterr().out
    assert again.count("finished, read back") == 2 and ": training" not in again
    erased_line = next(line for line in again.splitlines() if line.startswith("| memoria:erased_every_segment"))
    assert f"{erased[0]['value']:.4f}" in erased_line


def test_compare_with_seeds_reports_their_spread(tmp_path, capsys):
    compare_sorting(
        run_sorting_args(tmp_path, "--seeds", "1", "2", "--models", "memoria:erased_every_segment", "transformer")
    )
    table = capsys.readouterr().out.split("### T16")[-1]
    assert "std" in table and "seed 1" in table and "seed 2" in table and "2 seeds" in table


def test_a_killed_comparison_run_resumes_from_its_last_checkpoint(tmp_path, capsys):
    arguments = run_sorting_args(tmp_path, "--seeds=1", "--models", "transformer", "--max-steps=4")
    compare_sorting(arguments)
    run = tmp_path / "T16" / "transformer-seed1"
    (run / "results.json").unlink()  # as if killed after its validation at step 2 wrote last.ckpt
    capsys.readouterr()
    compare_sorting(arguments)
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'}" in capsys.readouterr().out
    assert json.loads((run / "results.json").read_text())["steps"] == 4


def test_a_run_finished_by_an_earlier_version_is_read_back(tmp_path, capsys):
    from experiment.recipes.sorting import grid

    settings = SortingCompare.create(**dict(zip(("output_dir", "segment_length"), (str(tmp_path), 8))))
    settings = settings.replace(sequence_lengths=[16], vocab_size=4, num_train=8, num_dev=4, num_test=4, max_steps=2)
    settings = settings.replace(batch_size=4, seeds=[1], models=["memoria:erased_every_segment"])
    setting = grid(settings)[0]
    run = run_settings(TASK, setting, TASK.models["memoria:erased_every_segment"], 1, tmp_path)
    assert run.output_dir == str(tmp_path / "T16" / "memoria-erased-seed1")  # the directory run_sorting used
    recorded = {**run.to_dict(), "config_override": ["memoria_reset_period=1"]}  # as run_sorting recorded it
    results = {"test": {"accuracy": 0.25, "loss": 1.5}, "mean_step_seconds": 0.1, "parameters": 10}
    (tmp_path / "T16" / "memoria-erased-seed1").mkdir(parents=True)
    (tmp_path / "T16" / "memoria-erased-seed1" / "results.json").write_text(
        json.dumps({**results, "settings": recorded})
    )
    from experiment.recipes.compare import compare

    rows = compare(TASK, settings)
    assert "finished, read back" in capsys.readouterr().out
    assert {row["metric"]: row["value"] for row in rows} == {
        "accuracy": 0.25,
        "loss": 1.5,
        "step_seconds": 0.1,
        "parameters": 10,
    }


def test_compare_refuses_an_unknown_model(tmp_path):
    with pytest.raises(ValueError, match=r"--models \['gpt5'\] are not models of sorting"):
        compare_sorting(run_sorting_args(tmp_path, "--models", "gpt5"))


@pytest.mark.parametrize("key", list(TASK.models))
def test_compare_passes_each_models_overrides_in_process_with_their_types(key, tmp_path):
    from experiment.recipes import Setting
    from experiment.recipes.compare import narrowed
    from experiment.recipes.sorting import SortingTrain
    from experiment.training import load_model_config

    settings = SortingCompare.create(segment_length=8)
    setting = Setting("T16", narrowed(settings, SortingTrain, data=str(tmp_path / "data.json")))
    config = load_model_config(run_settings(TASK, setting, TASK.models[key], 1, tmp_path))
    for field, value in TASK.models[key].overrides.items():
        assert getattr(config, field) == value and type(getattr(config, field)) is type(value)


def test_settings_come_from_a_json_file_and_options_override_it(tiny_data_file, tmp_path):
    from experiment.recipes.sorting import SortingTrain

    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"data": str(tiny_data_file), "segment_length": 16, "config_override": {"n_layer": 1}}))
    settings = SortingTrain.create(file=str(path), segment_length=8, model_config="m.json", output_dir="o")
    assert (settings.segment_length, settings.config_override, settings.batch_size) == (8, {"n_layer": 1}, 32)
    with pytest.raises(ValueError, match=r"has no settings \['segment_lenght'\]"):
        SortingTrain.create(segment_lenght=8)
    with pytest.raises(ValueError, match="missing settings: --model-config, --output-dir, --data"):
        SortingTrain.create()


def test_a_second_run_into_the_same_output_dir_is_refused_unless_resumed_or_overwritten(
    tiny_data_file, tiny_config_files, tmp_path
):
    output_dir = tmp_path / "run"
    arguments = train_args(tiny_data_file, tiny_config_files["baseline"], output_dir, "--max-steps=2")
    train_sorting(arguments)
    first = (output_dir / "results.json").read_text()
    with pytest.raises(FileExistsError, match="already holds a run .*--resume-from .*--overwrite"):
        train_sorting(arguments)
    assert (output_dir / "results.json").read_text() == first  # nothing of the refused run was written
    (output_dir / "checkpoints" / "stale.ckpt").write_text("from an old run")
    train_sorting([*arguments, "--overwrite"])
    assert not (output_dir / "checkpoints" / "stale.ckpt").exists()
