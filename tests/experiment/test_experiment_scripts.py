"""The command-line scripts: --help, and a tiny run from data generation through training to evaluation."""

import json

import pytest
import torch

from experiment import eval_sorting, make_sorting_data, run_sorting, train_sorting


@pytest.mark.parametrize("script", [make_sorting_data, train_sorting, eval_sorting, run_sorting])
def test_help_shows_the_defaults(script, capsys):
    with pytest.raises(SystemExit) as exited:
        script.main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "usage" in text and "(default:" in text


def test_make_sorting_data_writes_the_splits(tmp_path):
    path = tmp_path / "data.json"
    make_sorting_data.main(
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
    train_sorting.main(train_args(tiny_data_file, tiny_config_files[model], output_dir))
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
    eval_sorting.main(["--checkpoint", str(final), "--data", str(tiny_data_file), "--batch-size", "4"])
    assert (
        f"test accuracy {results['test']['accuracy']:.4f}, loss {results['test']['loss']:.4f}"
        in capsys.readouterr().out
    )

    last = output_dir / "checkpoints" / "last.ckpt"
    train_sorting.main(
        train_args(tiny_data_file, tiny_config_files[model], output_dir, "--max-steps=5", f"--resume-from={last}")
    )
    assert json.loads((output_dir / "results.json").read_text())["steps"] == 5

    capsys.readouterr()
    eval_sorting.main(
        ["--checkpoint", str(last), "--data", str(tiny_data_file), "--batch-size", "4", "--accelerator=cpu"]
    )
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


def test_run_sorting_compares_every_model_and_reads_finished_runs_back(tmp_path, capsys):
    run_sorting.main(run_sorting_args(tmp_path, "--seeds=1"))
    output = capsys.readouterr().out
    table = output.split("test token accuracy")[-1]
    for key in run_sorting.DEFAULT_MODELS:
        assert run_sorting.MODEL_CHOICES[key][0] in table
    assert "vs Transformer" in table and "Better:" in table and f"Outputs: {tmp_path}" in table
    assert (
        "count the last segment's symbols" in table and "count the whole sequence, then emit by count: 1.0000" in table
    )
    assert len(list(tmp_path.glob("T16/*/results.json"))) == len(run_sorting.DEFAULT_MODELS)

    run_sorting.main(run_sorting_args(tmp_path, "--seeds=1", "--models", "memoria-erased", "transformer"))
    again = capsys.readouterr().out
    assert again.count("read back") == 2 and "== training" not in again
    assert table.split("Memoria, erased every segment")[1].split()[0] in again  # the same accuracy


def test_run_sorting_with_seeds_reports_their_spread(tmp_path, capsys):
    run_sorting.main(run_sorting_args(tmp_path, "--seeds", "1", "2", "--models", "memoria-erased", "transformer"))
    table = capsys.readouterr().out.split("test token accuracy")[-1]
    assert "std" in table and "seed 1" in table and "seed 2" in table


@pytest.mark.parametrize("key", list(run_sorting.MODEL_CHOICES))
def test_run_sorting_passes_each_models_overrides_with_their_types(key, tmp_path):
    from experiment.training import load_model_config

    args = run_sorting.parse_args(run_sorting_args(tmp_path))
    train_args = run_sorting.training_arguments(args, key, tmp_path / "data.json", 16, 1)
    config = load_model_config(train_args)
    for field, value in run_sorting.MODEL_CHOICES[key][2].items():
        assert getattr(config, field) == value and type(getattr(config, field)) is type(value)


def test_a_second_run_into_the_same_output_dir_is_refused_unless_resumed_or_overwritten(
    tiny_data_file, tiny_config_files, tmp_path
):
    output_dir = tmp_path / "run"
    arguments = train_args(tiny_data_file, tiny_config_files["baseline"], output_dir, "--max-steps=2")
    train_sorting.main(arguments)
    first = (output_dir / "results.json").read_text()
    with pytest.raises(FileExistsError, match="already holds a run .*--resume-from .*--overwrite"):
        train_sorting.main(arguments)
    assert (output_dir / "results.json").read_text() == first  # nothing of the refused run was written
    (output_dir / "checkpoints" / "stale.ckpt").write_text("from an old run")
    train_sorting.main([*arguments, "--overwrite"])
    assert not (output_dir / "checkpoints" / "stale.ckpt").exists()
