"""The language-modelling comparison as the issue asks for it: one epoch per run, the double-segment Transformer
scored on the same tokens per recurrence bucket, the test's loss per work and bucket, and the paired report."""

import json
import math

import numpy as np
import pytest
import torch

from experiment.data.language_modeling import IGNORE_INDEX, load_pg19, make_windows
from experiment.recipes.compare import paired_verdict, run_settings
from experiment.recipes.language_modeling import TASK, LanguageModelingCompare, report, work_losses
from experiment.tasks.language_modeling import (
    RECURRENCE_BUCKETS,
    LanguageModelingDataModule,
    LanguageModelingTask,
    RecurrenceTracker,
    work_metric_names,
)
from tests.experiment.test_language_modeling_task import (  # noqa: F401 (fixtures)
    TINY_GPT2,
    brute_force_distances,
    compare_language_modeling,
    gutenberg,
    texts_dir,
    train_language_modeling,
)
from tests.experiment.tiny import quiet_trainer, tiny_run


def test_the_comparison_defaults_are_one_epoch_of_three_seeds_with_the_ladder_and_the_ceiling():
    defaults = LanguageModelingCompare.create()
    assert (defaults.max_steps, defaults.epochs, defaults.seeds) == (-1, 1, [42, 43, 44])
    ladder = ["memoria", "memoria:erased_every_segment", "memoria:erased_at_eval", "memoria:working_memory_only"]
    assert set(ladder + ["memoria:paper_mode", "transformer", "transformer:double_segment"]) <= set(TASK.default_models)
    working = TASK.models["memoria:working_memory_only"]
    assert working.evaluates == "memoria"  # the trained Memoria's weights, nothing reminded
    assert working.overrides == {"memoria_num_reminded_stm": 0, "memoria_num_reminded_ltm": 0}
    assert TASK.models["memoria:paper_mode"].overrides == {"memoria_mode": "paper"}
    assert not TASK.models["memoria:paper_mode"].evaluates
    assert len(TASK.quick["models"]) <= 4 and TASK.quick["max_steps"] == 50


def test_an_epoch_is_one_pass_over_every_training_token(gutenberg, tmp_path):
    config = tmp_path / "gpt2.json"
    config.write_text(json.dumps(TINY_GPT2))
    output = tmp_path / "run"
    defaults = LanguageModelingCompare.create()
    schedule = dict(max_steps=defaults.max_steps, epochs=defaults.epochs)  # the comparison's
    shape = dict(segment_length=16, segments_per_batch=2, batch_size=16, eval_batch_size=8)
    data = dict(data_dir=gutenberg / "pg19", dataset="pg19", bpe_vocab_size=300, heldout_tokens=200)
    train_language_modeling(tiny_run(config, output, limit_val_batches=1, **schedule, **shape, **data))
    results = json.loads((output / "results.json").read_text())
    from experiment.data.language_modeling import load_tokenizer

    tokenizer = load_tokenizer(str(output / "tokenizer"))
    documents = tokenizer.encode_documents(load_pg19(gutenberg / "pg19")["train"])
    windows = make_windows(documents, 16, 32, tokenizer.eos_id)
    assert results["steps"] == windows.input_ids.shape[0] > 1  # every window once
    # the scored labels of those windows: every token and every work's closing end-of-text, less the first token
    seen = int((windows.labels != IGNORE_INDEX).sum())
    assert seen == results["train_tokens"] + len(documents) - 1


def test_the_comparison_trains_the_ceiling_on_segments_of_128_and_tests_the_ladder_on_memorias_weights(
    gutenberg, tmp_path, capsys
):
    output = tmp_path / "runs"
    models = ["memoria", "memoria:working_memory_only", "transformer", "transformer:double_segment"]
    compare_language_modeling(
        [
            f"--data-dir={gutenberg}",
            f"--output-dir={output}",
            "--models",
            *models,
            "--seeds=1",
            "--max-steps=1",
            "--limit-val-batches=1",
            "--bpe-vocab-size=300",
            "--eval-batch-size=2",
            "--no-progress-bar",
        ]
    )
    results = json.loads((output / "transformer-double_segment-seed1" / "results.json").read_text())
    settings = results["settings"]
    compare = LanguageModelingCompare.create()
    assert (settings["segment_length"], settings["batch_size"]) == (2 * compare.segment_length, compare.batch_size // 2)
    assert settings["recurrence_segment_length"] == compare.segment_length  # buckets in the comparison's segments
    assert settings["epochs"] == 1  # the grid sets no epochs of its own
    checkpoint = torch.load(results["last_checkpoint"], weights_only=True)
    assert checkpoint["language_modeling_stream"]["window_shape"] == [8, 128]  # [streams, tokens] per step

    working = json.loads((output / "memoria-working_memory_only-seed1" / "results.json").read_text())
    memoria = json.loads((output / "memoria-seed1" / "results.json").read_text())
    assert working["evaluated_checkpoint"] == memoria["last_checkpoint"]  # the same weights, tested otherwise
    assert working["settings"]["config_override"] == {"memoria_num_reminded_stm": 0, "memoria_num_reminded_ltm": 0}
    rows = json.loads((output / "comparison.json").read_text())
    tokens = {(row["model"], row["ablation"]): row["value"] for row in rows if row["metric"] == "tokens_recur_1_work0"}
    assert len(tokens) == 4 and len(set(tokens.values())) == 1  # every model scored on the same tokens
    printed = capsys.readouterr().out
    assert "transformer:double_segment minus transformer" in printed
    assert "memoria minus memoria:working_memory_only" in printed


def test_a_longer_segment_counts_distances_in_the_comparisons_segments():
    rng = np.random.default_rng(7)
    streams = rng.integers(0, 10, size=(2, 4 * 8 + 1))
    tracker = RecurrenceTracker(vocab_size=10, unit=4)  # read in segments of 8, counted in segments of 4
    got = [
        tracker.distances(
            torch.from_numpy(streams[:, :-1][:, s : s + 8]), torch.from_numpy(streams[:, 1:][:, s : s + 8])
        )
        for s in range(0, 32, 8)
    ]
    got = torch.cat(got, dim=1).numpy()
    for row in range(2):
        np.testing.assert_array_equal(got[row], brute_force_distances(streams[row], 4))


def test_the_per_work_bucket_sums_add_up_to_each_bucket_and_each_work():
    rng = np.random.default_rng(3)
    documents = [rng.integers(1, 20, size=length) for length in (150, 90, 200)]
    splits = {"train": documents, "valid": documents, "test": documents}
    datamodule = LanguageModelingDataModule(splits, 2, 2, 8, segments_per_batch=2, eos_id=0)  # streams cross works
    torch.manual_seed(0)
    task = LanguageModelingTask(TINY_GPT2, segment_length=8)
    metrics = quiet_trainer().test(task, datamodule=datamodule, verbose=False)[0]
    windows = make_windows(documents, 2, 16, 0)
    for name, _, _ in RECURRENCE_BUCKETS:
        names = [work_metric_names(name, work) for work in range(3)]
        tokens = sum(metrics.get(f"test/{count}", 0.0) for _, count in names)
        total = sum(metrics.get(f"test/{loss}", 0.0) for loss, _ in names)
        assert tokens > 0 and total / tokens == pytest.approx(metrics[f"test/{name}"], rel=1e-5)
    for work in range(3):
        counted = sum(metrics.get(f"test/{work_metric_names(name, work)[1]}", 0.0) for name, _, _ in RECURRENCE_BUCKETS)
        assert counted == int((windows.documents == work).sum())  # the work's scored labels, its end-of-text included
    assert int((windows.documents >= 0).sum()) == int((windows.labels != IGNORE_INDEX).sum())


def rows_of(key, seed, work, bucket, loss_sum, tokens):
    model, _, ablation = key.partition(":")
    base = {"task": "language-modeling", "model": model, "ablation": ablation, "seed": seed, "setting": "bpe"}
    loss_name, tokens_name = work_metric_names(f"loss_{bucket}", work)
    return [{**base, "metric": loss_name, "value": loss_sum}, {**base, "metric": tokens_name, "value": tokens}]


def test_the_paired_verdict_is_the_mean_difference_against_two_standard_errors():
    # differences 0.1, 0.2, 0.3, 0.2: mean 0.2, std sqrt(0.02 / 3), SE 0.0408, 2 SE 0.0816 < 0.2
    average, error, reading = paired_verdict([0.1, 0.2, 0.3, 0.2])
    assert average == pytest.approx(0.2) and error == pytest.approx(math.sqrt(0.02 / 3) / 2)
    assert reading == "higher"
    assert paired_verdict([-0.1, 0.1, -0.1, 0.1])[2] == "level"  # mean 0
    assert paired_verdict([-0.5, -0.4, -0.6])[2] == "lower"
    assert paired_verdict([0.3])[1:] == (None, "")


def test_the_report_pairs_memoria_with_its_erased_self_by_work_and_seed():
    rows = []
    # Memoria's mean loss in recur_5_16: 2.0 everywhere; erased at evaluation: 2.1, 2.2 (work 0), 2.3, 2.2 (work 1)
    for seed, (first, second) in zip((42, 43), ((2.1, 2.3), (2.2, 2.2))):
        rows += rows_of("memoria", seed, 0, "recur_5_16", 20.0, 10) + rows_of("memoria", seed, 1, "recur_5_16", 8.0, 4)
        rows += rows_of("memoria:erased_at_eval", seed, 0, "recur_5_16", first * 10, 10)
        rows += rows_of("memoria:erased_at_eval", seed, 1, "recur_5_16", second * 4, 4)
    losses = work_losses(rows)
    assert losses["memoria:erased_at_eval"]["recur_5_16"][(1, 42)] == pytest.approx(2.3)
    text = report(rows, LanguageModelingCompare.create())
    line = next(line for line in text.splitlines() if line.startswith("| 5-16"))
    # differences -0.1, -0.3 (seed 42), -0.2, -0.2 (seed 43): per work -0.15 and -0.25, mean -0.2 ± 2 SE 0.0816 (SE sqrt(0.02 / 3) / 2)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells == ["5-16", "-0.1500", "-0.2500", "-0.2000 ± 0.0816", "4", "memoria lower"]
    assert "memoria minus memoria:erased_at_eval" in text and "(test work, seed) pair (2 test works here" in text
    assert "memoria minus transformer" not in text  # no Transformer rows: no such pair


def test_the_comparison_records_the_per_work_sums():
    from experiment.recipes.compare import recorded

    for name, _, _ in RECURRENCE_BUCKETS:
        for work in (0, 2, 250):
            assert all(recorded(TASK, metric) for metric in work_metric_names(name, work))
    assert not recorded(TASK, "tokens") and not recorded(TASK, "loss_sum_work0")


def test_the_double_segment_entry_is_tested_on_the_comparisons_streams(tmp_path):
    settings = LanguageModelingCompare.create(output_dir=str(tmp_path))
    from experiment.recipes import Setting
    from experiment.recipes.compare import narrowed
    from experiment.recipes.language_modeling import LanguageModelingTrain

    setting = Setting("bpe", narrowed(settings, LanguageModelingTrain, recurrence_segment_length=64), directory="")
    plain = run_settings(TASK, setting, TASK.models["transformer"], 42, tmp_path)
    double = run_settings(TASK, setting, TASK.models["transformer:double_segment"], 42, tmp_path)
    assert double.segment_length * double.batch_size == plain.segment_length * plain.batch_size  # tokens per step
    assert double.eval_batch_size == plain.eval_batch_size  # the same test streams
    assert double.recurrence_segment_length == plain.recurrence_segment_length == plain.segment_length


def test_time_steps_each_model_on_the_windows_it_trains_on_in_the_comparison(monkeypatch):
    from experiment.__main__ import main

    shapes = {}
    original = LanguageModelingTask.run_batch

    def recording(self, batch, split):
        shapes.setdefault(self.hparams.segment_length, set()).add(tuple(batch["input_ids"].shape))
        return original(self, batch, split)

    monkeypatch.setattr(LanguageModelingTask, "run_batch", recording)
    options = ["--steps=2", "--segment-length=8", "--batch-size=16", "--vocab-size=50"]
    main(["time", "language-modeling", *options, "--models", "transformer", "transformer:double_segment"])
    assert shapes == {8: {(16, 8)}, 128: {(8, 128)}}  # [streams, window tokens]
