"""The documented multi-process commands on CPU (gloo): two processes, one segment per batch, under ``ddp`` (the
command re-launched per process) and ``ddp_spawn``. Only rank 0 prints and writes; the test split is read once
per example (the metrics equal a one-process evaluation of the same checkpoint)."""

import json
import random
import subprocess
import sys

import pytest
from test_classification_scripts import common_args, tiny_setup  # noqa: F401  (a fixture)

from experiment.__main__ import main
from experiment.data.sorting import generate_sorting_data, save_sorting_data

TWO_PROCESSES = ["--devices=2", "--accelerator=cpu", "--no-progress-bar"]


def run_command(*arguments: str) -> str:
    """Runs ``python -m experiment ...`` in a fresh process; returns its standard output."""
    result = subprocess.run(
        [sys.executable, "-m", "experiment", *arguments], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_language_modeling_under_ddp_with_one_segment_per_batch(tiny_memoria_config, tmp_path):
    rng = random.Random(0)
    for split, count in (("train", 4), ("validation", 2), ("test", 2)):
        (tmp_path / "pg19" / split).mkdir(parents=True)
        for index in range(count):
            text = " ".join(rng.choice("the of and to a in is that".split()) for _ in range(200))
            (tmp_path / "pg19" / split / f"{index}.txt").write_text(text)
    config = tmp_path / "memoria.json"
    config.write_text(json.dumps({"model_type": "gpt2_with_memoria", **tiny_memoria_config(vocab_size=256).to_dict()}))
    printed = run_command(
        "train",
        "language-modeling",
        "--dataset=pg19",
        f"--data-dir={tmp_path / 'pg19'}",
        "--tokenizer=bytes",
        f"--model-config={config}",
        f"--output-dir={tmp_path / 'run'}",
        "--segment-length=8",
        "--segments-per-batch=1",
        "--batch-size=2",
        "--eval-batch-size=2",
        "--max-steps=3",
        "--val-check-interval=2",
        "--limit-val-batches=2",
        "--strategy=ddp",
        *TWO_PROCESSES,
    )
    assert printed.count("test perplexity") == 1  # rank 0 alone
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["steps"] == 3 and results["settings"]["strategy"] == "ddp"


def test_sorting_under_ddp_tests_each_example_once(tiny_config_files, tmp_path):
    data_file = tmp_path / "sort.json"
    save_sorting_data(generate_sorting_data(24, 8, 16, 8, 7, seed=0), data_file)  # 7 test examples: uneven shares
    output_dir = tmp_path / "run"
    printed = run_command(
        "train",
        "sorting",
        f"--data={data_file}",
        f"--model-config={tiny_config_files['memoria']}",
        f"--output-dir={output_dir}",
        "--segment-length=8",
        "--batch-size=4",
        "--eval-batch-size=3",
        "--max-steps=2",
        "--val-check-interval=2",
        "--strategy=ddp",
        *TWO_PROCESSES,
    )
    assert printed.count("test accuracy") == 1
    results = json.loads((output_dir / "results.json").read_text())
    alone = main(["eval", "sorting", f"--checkpoint={results['last_checkpoint']}", f"--data={data_file}"])
    assert alone["test/accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-6)


def test_classification_under_ddp_spawn(tiny_setup, tmp_path, capsys):  # noqa: F811
    data, tokenizer, configs = tiny_setup
    arguments = ["--dataset=json", f"--data={data}", *common_args(tmp_path / "run", configs["memoria"], tokenizer)]
    arguments = [argument for argument in arguments if not argument.startswith("--devices")]
    main(["train", "classification", *arguments, "--strategy=ddp_spawn", "--devices=2", "--eval-batch-size=3"])
    assert capsys.readouterr().out.count("test accuracy") == 1
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    alone = main(
        [
            "eval",
            "classification",
            f"--checkpoint={results['last_checkpoint']}",
            "--dataset=json",
            f"--data={data}",
            f"--tokenizer={tokenizer}",
            "--accelerator=cpu",
        ]
    )
    assert alone["test/accuracy"] == pytest.approx(results["test"]["accuracy"], abs=1e-6)
    # each test document counted once in its group (here every document is its own), as in one process
    counts = {key: value for key, value in results["test"].items() if key.startswith(("documents_", "correct_"))}
    assert sum(value for key, value in counts.items() if key.startswith("documents_")) == 4
    assert counts == {key: alone[f"test/{key}"] for key in counts}
