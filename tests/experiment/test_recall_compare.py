"""The recall comparison: tidy rows by distance, erased_at_eval testing the trained Memoria's own checkpoint, one
seed for some models, the report and its figure; the eval verb agrees with the comparison."""

import dataclasses
import json

import pytest
import torch

from experiment.__main__ import main
from experiment.recipes import model_table
from experiment.recipes.compare import compare
from experiment.recipes.recall import TASK, RecallCompare, memory_lines, memory_verdict
from tests.experiment.tiny import TINY_RECALL

TINY = dict(n_layer=1, n_embd=32, n_head=2, n_inner=64, n_positions=16, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
TINY_MEMORIA = dict(memoria_num_memories=4, memoria_stm_capacity=8, memoria_num_reminded_stm=4)
MODELS = ["memoria", "memoria:erased_at_eval", "memoria:working_memory_only", "transformer"]


@pytest.fixture
def tiny_task(tmp_path):
    """The recall task with its Memoria and Transformer entries on tiny configurations."""
    files = {}
    for name, fields in (("memoria", {"model_type": "gpt2_with_memoria", **TINY, **TINY_MEMORIA}),):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(fields))
    files["transformer"] = tmp_path / "transformer.json"
    files["transformer"].write_text(json.dumps({"model_type": "gpt2_segment", **TINY}))
    models = [dataclasses.replace(TASK.models[key], config=str(files[TASK.models[key].name])) for key in MODELS]
    return dataclasses.replace(TASK, models=model_table(*models))


def tiny_run(**changes):
    """The settings of a tiny recall run (one step, 4 samples a split), with ``changes``."""
    settings = dict(segment_length=8, batch_size=4, max_steps=1, val_check_interval=1, num_train=4, num_dev=4)
    return {**settings, "num_test": 4, "no_progress_bar": True, **TINY_RECALL, **changes}


def test_compare_writes_rows_by_distance_and_erased_at_eval_tests_memorias_checkpoint(tiny_task, tmp_path, capsys):
    output_dir = tmp_path / "out"
    settings = RecallCompare.create(
        output_dir=str(output_dir),
        models=MODELS,
        seeds=[1, 2],
        one_seed=["memoria:working_memory_only", "transformer"],
        **tiny_run(eval_batch_size=8, max_steps=2, val_check_interval=2, num_train=8, num_test=8),
    )
    rows = compare(tiny_task, settings)
    printed = capsys.readouterr().out
    runs = {(row["model"], row["ablation"], row["seed"]) for row in rows}
    assert runs == {
        ("memoria", "", 1),
        ("memoria", "", 2),
        ("memoria", "erased_at_eval", 1),
        ("memoria", "erased_at_eval", 2),
        ("memoria", "working_memory_only", 1),
        ("transformer", "", 1),
    }
    metrics = {row["metric"] for row in rows if row["ablation"] == "erased_at_eval"}
    assert metrics == {
        "accuracy",
        "accuracy_d0",
        "accuracy_d1",
        "accuracy_d2",
        "loss",
        "parameters",
        "token_parameters",
    }  # no step time
    assert json.loads((output_dir / "comparison.json").read_text()) == rows

    for seed in (1, 2):
        trained = output_dir / f"memoria-seed{seed}"
        erased = output_dir / f"memoria-erased_at_eval-seed{seed}"
        results = json.loads((erased / "results.json").read_text())
        assert results["evaluated_checkpoint"] == str(trained / "checkpoints" / "final.ckpt")
        assert results["settings"]["config_override"] == {"memoria_reset_period": 1}
        assert results["steps"] == 2 and not (erased / "checkpoints").exists()  # tested, never trained
        assert f"{erased}: testing the weights of {trained / 'checkpoints' / 'final.ckpt'}" in printed
    assert printed.count(": training") == 3  # memoria x 2, transformer: working_memory_only tests memoria's weights
    working = json.loads((output_dir / "memoria-working_memory_only-seed1" / "results.json").read_text())
    assert working["evaluated_checkpoint"] == str(output_dir / "memoria-seed1" / "checkpoints" / "final.ckpt")
    assert working["settings"]["config_override"] == {"memoria_num_reminded_stm": 0, "memoria_num_reminded_ltm": 0}

    report = (output_dir / "comparison.md").read_text()
    assert "| model " in report and "| d=0 " in report and "| d=2 " in report
    assert "Chance: 0.2500" in report and "The d = 0 control (the pair and its query in the same segment):" in report
    assert "At d = 2, memoria minus memoria:erased_at_eval (same weights):" in report
    assert "At d = 2, memoria minus memoria:working_memory_only (same weights):" in report
    assert "the gain over erased_at_eval is carried by the working memory" in report
    assert "Run with the first seed only: memoria:working_memory_only, transformer." in report
    assert (output_dir / "recall_accuracy_by_distance.png").stat().st_size > 1000

    # moved elsewhere, the finished runs are read back and the entries that only test find the weights where
    # they now are (each results.json still names the directory it was written in)
    moved = tmp_path / "moved"
    output_dir.rename(moved)
    capsys.readouterr()
    assert compare(tiny_task, settings.replace(output_dir=str(moved))) == rows
    printed = capsys.readouterr().out
    assert ": training" not in printed
    assert f"testing the weights of {moved / 'memoria-seed1' / 'checkpoints' / 'final.ckpt'}" in printed
    moved.rename(output_dir)

    # the eval verb with the same samples and the same override gives what the comparison recorded
    capsys.readouterr()
    value = next(
        r["value"] for r in rows if r["ablation"] == "erased_at_eval" and r["seed"] == 1 and r["metric"] == "accuracy"
    )
    main(
        [
            "eval",
            "recall",
            f"--checkpoint={output_dir / 'memoria-seed1' / 'checkpoints' / 'final.ckpt'}",
            "--seed=1",
            "--num-samples=8",
            "--batch-size=8",
            "--config-override",
            "memoria_reset_period=1",
            "--accelerator=cpu",
        ]
    )
    assert f"test: accuracy {value:.4f}" in capsys.readouterr().out


def test_the_erased_weights_ignore_the_fact_segment(tmp_path, tiny_task):
    """The weights tested as erased_at_eval are the trained model's, and what they answer after the fact segment
    does not depend on it."""
    from experiment.data.recall import RecallDataset, RecallSpec
    from experiment.recipes.recall import RecallTrain, train
    from experiment.tasks.recall import RecallTask
    from experiment.training import load_weights

    settings = RecallTrain.create(
        model_config=tiny_task.models["memoria"].config_path,
        output_dir=str(tmp_path / "run"),
        **tiny_run(),
    )
    results = train(settings)
    checkpoint = torch.load(results["last_checkpoint"], map_location="cpu", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    erased = RecallTask({**hparams["model_config"], "memoria_reset_period": 1}, 8, hparams["data"])
    load_weights(erased, results["last_checkpoint"])
    for name, value in erased.state_dict().items():
        if name in checkpoint["state_dict"] and isinstance(value, torch.Tensor):
            assert torch.equal(value, checkpoint["state_dict"][name]), name
    spec = RecallSpec(segment_length=8, **TINY_RECALL)
    batch = torch.stack([RecallDataset(spec, "test", 2, 0)[i]["input_ids"] for i in range(2)])
    changed = batch.clone()
    changed[:, :8] = torch.randint(0, spec.vocab_size, (2, 8))  # another fact segment
    full = RecallTask(hparams["model_config"], 8, hparams["data"])
    load_weights(full, results["last_checkpoint"])

    def logits_of(task: RecallTask, inputs: torch.Tensor) -> list:
        task.eval()
        task.model.reset_memory()
        with torch.no_grad():
            return [task.model(input_ids=inputs[:, start : start + 8]).logits for start in range(0, 24, 8)]

    erased_logits = [logits_of(erased, inputs) for inputs in (batch, changed)]
    assert not torch.allclose(erased_logits[0][0], erased_logits[1][0])
    assert all(torch.allclose(erased_logits[0][s], erased_logits[1][s]) for s in (1, 2))
    full_logits = [logits_of(full, inputs) for inputs in (batch, changed)]
    assert not torch.allclose(full_logits[0][1], full_logits[1][1])  # with memory, segment 1 reads segment 0


def test_the_verdict_calls_differences_within_two_standard_errors_level():
    assert memory_verdict({1: 0.30, 2: 0.32}, {1: 0.29, 2: 0.33}, 8)[1] == "level"
    assert memory_verdict({1: 0.50, 2: 0.52, 3: 0.51}, {1: 0.06, 2: 0.07, 3: 0.06}, 8)[1] == "higher"
    assert "no standard error" in memory_verdict({1: 0.5}, {1: 0.06}, 8)[0]


def test_the_report_calls_a_gain_that_working_memory_alone_matches_relay():
    def table(working: float) -> dict:
        return {
            "memoria": {8: {1: 1.0, 2: 0.98, 3: 0.99}},
            "memoria:erased_at_eval": {8: {1: 0.12, 2: 0.13, 3: 0.11}},
            "memoria:working_memory_only": {8: {1: working, 2: working - 0.01, 3: working + 0.005}},
        }

    relay = memory_lines(table(0.99), 8)
    assert len(relay) == 3
    assert "memoria is higher. Memory helps." in relay[0] and relay[1].endswith("level (within 2 standard errors).")
    assert relay[-1].endswith("the gain is relay through the working memory, not long-term engrams.")
    engrams = memory_lines(table(0.30), 8)
    assert engrams[-1].endswith("the reminded engrams carry part of the answer.")
    full, erased, working = table(0.30).values()
    variant = {
        "memoria:abstractor": full,
        "memoria:abstractor_erased_at_eval": erased,
        "memoria:abstractor_working_memory_only": working,
    }
    assert memory_lines(variant, 8, "memoria:abstractor")[1].startswith(
        "At d = 8, memoria:abstractor minus memoria:abstractor_working_memory_only (same weights):"
    )
    # differences 0.80, 0.03, 0.39: level (0.407 +- 2 SE 0.445), but the interval reaches past half the gain
    # over the erased self (0.87): no verdict
    wide = memory_lines({**table(0.0), "memoria:working_memory_only": {8: {1: 0.2, 2: 0.95, 3: 0.6}}}, 8)
    assert wide[1].endswith("level (within 2 standard errors).")
    assert wide[-1].endswith("more seeds are needed to tell relay from engrams.")
    unused = memory_lines({**table(0.12), "memoria": {8: {1: 0.12, 2: 0.13, 3: 0.11}}}, 8)
    assert unused[-1] == "Here memoria is level with memoria:erased_at_eval at d = 8: no memory effect to attribute."


def test_a_vocabulary_other_than_the_generators_is_refused(tmp_path, tiny_task):
    from experiment.recipes.recall import RecallTrain, train

    settings = RecallTrain.create(
        model_config=tiny_task.models["transformer"].config_path,
        output_dir=str(tmp_path / "run"),
        segment_length=8,
        config_override={"vocab_size": 99},
        **TINY_RECALL,
    )
    with pytest.raises(ValueError, match="vocab_size=99 differs from the generator's 12"):
        train(settings)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("verb", ["train", "eval", "compare"])
def test_help_shows_the_defaults(verb, capsys):
    with pytest.raises(SystemExit) as exited:
        main([verb, "recall", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "(default: 4)" in text if verb != "eval" else "memoria_reset_period=1" in text
    assert ("--eval-only" in text) == (verb == "train")
