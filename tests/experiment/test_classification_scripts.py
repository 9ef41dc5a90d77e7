"""The classification commands end to end on tiny data: train (JSON and Hyperpartisan layouts, from a local
pretrained BERT), evaluate a checkpoint, and the comparison with its read-back of finished runs."""

import json

import pytest
import torch
from test_classification_data import write_plays, write_semeval
from transformers import BertConfig, BertModel

from experiment.data.classification import (
    ClassificationData,
    Document,
    load_classification_data,
    save_classification_data,
)
from experiment.data.shakespeare import GENRES
from experiment.data.tokenization import train_bpe_tokenizer
from tests.experiment.tiny import TINY_BERT, TINY_MEMORIA, command, tiny_run

prepare_classification = command("prepare", "classification")
train_classification = command("train", "classification")
eval_classification = command("eval", "classification")
compare_classification = command("compare", "classification")


WORDS = "red green blue cat dog sun moon star tree leaf".split()


@pytest.fixture
def tiny_setup(tmp_path):
    """A classification JSON file, a tokenizer trained on it and tiny model configurations."""
    rng = torch.Generator().manual_seed(0)

    def document(index: int, label: int) -> Document:
        picks = torch.randint(0, 5, (30,), generator=rng) + 5 * label
        return Document(str(index), " ".join(WORDS[i] for i in picks), label)

    splits = {name: [document(i, i % 2) for i in range(n)] for name, n in (("train", 8), ("dev", 4), ("test", 4))}
    save_classification_data(ClassificationData(["warm", "cold"], **splits), tmp_path / "data.json")
    tokenizer = train_bpe_tokenizer([d.text for d in splits["train"]], 40, tmp_path / "tokenizer")
    configs = {}
    for name, fields in (
        ("memoria", {"model_type": "memoria_bert", **TINY_BERT, **TINY_MEMORIA, "memory_layer_index": 1}),
        ("plain", {"model_type": "bert_segment", **TINY_BERT}),
    ):
        configs[name] = tmp_path / f"{name}.json"
        configs[name].write_text(json.dumps(fields))
    return tmp_path / "data.json", tokenizer, configs


def common_args(output_dir, config, tokenizer, *extra):
    sizes = dict(segment_length=8, batch_size=4, eval_batch_size=4, max_steps=2, val_check_interval=1)
    return tiny_run(config, output_dir, *extra, tokenizer=tokenizer, learning_rate="1e-3", **sizes)


@pytest.mark.parametrize(
    "model, extra", [("memoria", []), ("plain", ["--prediction=mean"]), ("plain", ["--max-segments=1"])]
)
def test_train_then_evaluate(model, extra, tiny_setup, tmp_path, capsys):
    data, tokenizer, configs = tiny_setup
    output_dir = tmp_path / "run"
    train_classification(
        ["--dataset=json", f"--data={data}", *common_args(output_dir, configs[model], tokenizer, *extra)]
    )
    results = json.loads((output_dir / "results.json").read_text())
    assert results["labels"] == ["warm", "cold"] and results["steps"] == 2
    for field in ("test", "test_best"):
        assert 0 <= results[field]["accuracy"] <= 1 and 0 <= results[field]["macro_f1"] <= 1
    assert "macro-F1" in capsys.readouterr().out
    eval_classification(
        [
            f"--checkpoint={results['last_checkpoint']}",
            "--dataset=json",
            f"--data={data}",
            f"--tokenizer={tokenizer}",
            "--accelerator=cpu",
            *(["--max-segments=1"] if "--max-segments=1" in extra else []),
        ]
    )
    printed = capsys.readouterr().out
    assert f"test accuracy {results['test']['accuracy']:.4f}" in printed


def test_train_on_hyperpartisan_from_a_local_pretrained_bert(tiny_setup, tmp_path, capsys):
    _, _, configs = tiny_setup
    articles = [
        (
            f"{i:04d}",
            f"Title {i}",
            f"<p>{' '.join(WORDS[(i * j) % 10] for j in range(20))} {i}</p>",
            "true" if i % 2 else "false",
        )
        for i in range(20)
    ]
    xml, truth = write_semeval(tmp_path, articles)
    tokenizer = train_bpe_tokenizer([" ".join(WORDS)] * 5, 40, tmp_path / "tok")
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=40, **{k: v for k, v in TINY_BERT.items() if k != "num_labels"}))
    bert.save_pretrained(tmp_path / "bert")
    output_dir = tmp_path / "hp"
    train_classification(
        [
            "--dataset=hyperpartisan",
            f"--data={xml}",
            f"--ground-truth={truth}",
            f"--pretrained={tmp_path / 'bert'}",
            *common_args(output_dir, configs["memoria"], tokenizer),
        ]
    )
    printed = capsys.readouterr().out
    assert "loaded" in printed and "newly initialised" in printed
    results = json.loads((output_dir / "results.json").read_text())
    assert results["labels"] == ["false", "true"] and results["split_overlap"] == {}
    assert "train: 16 documents" in printed and "dev: 2 documents" in printed  # the clean split of 20
    trained_from = torch.load(results["last_checkpoint"], weights_only=True)["state_dict"]
    assert trained_from["model.bert.embeddings.word_embeddings.weight"].shape == (40, 16)


def test_bad_arguments_are_refused(tiny_setup, tmp_path):
    data, tokenizer, configs = tiny_setup
    with pytest.raises(ValueError, match="segment-length 20 needs 20 positions"):
        train_classification(
            [
                "--dataset=json",
                f"--data={data}",
                *common_args(tmp_path / "x", configs["plain"], tokenizer),
                "--segment-length=20",
            ]
        )
    with pytest.raises(FileNotFoundError, match="no config.json"):
        train_classification(
            [
                "--dataset=json",
                f"--data={data}",
                f"--pretrained={tmp_path}",
                *common_args(tmp_path / "y", configs["plain"], tokenizer),
            ]
        )


def test_prepare_writes_what_train_reads(tmp_path, tiny_setup, capsys):
    texts = write_plays(tmp_path / "texts", words=120)
    options = ["--texts-dir", str(texts), "--excerpt-words=30", "--train-stride-words=30", "--vocab-size=80"]
    data_path, tokenizer_dir = prepare_classification([f"--output-dir={tmp_path / 'data'}", *options])
    assert data_path.parent == tmp_path / "data" and (tokenizer_dir / "tokenizer.json").is_file()
    assert f"--data {data_path} --tokenizer {tokenizer_dir}" in capsys.readouterr().out
    layout = json.loads(data_path.read_text())
    assert layout["labels"] == GENRES and all(layout[split] for split in ("train", "dev", "test"))
    _, _, configs = tiny_setup
    results = train_classification(
        common_args(tmp_path / "run", configs["plain"], tokenizer_dir, f"--data={data_path}", "--dataset=json")
    )
    assert 0.0 <= results["test"]["macro_f1"] <= 1.0


def test_the_comparison_prints_the_table_and_reads_finished_runs_back(tmp_path, capsys):
    texts = write_plays(tmp_path / "texts", words=120)
    args = [
        f"--output-dir={tmp_path / 'cmp'}",
        f"--texts-dir={texts}",
        "--excerpt-words=30",
        "--train-stride-words=30",
        "--vocab-size=80",
        "--segment-length=16",
        "--max-segments=2",
        "--seeds=1",
        "--max-steps=2",
        "--batch-size=8",
        "--val-check-interval=2",
        "--no-progress-bar",
    ]
    compare_classification(args)
    first = capsys.readouterr().out
    for name in ("memoria-bert ", "memoria-bert:erased_every_segment", "bert:mean_of_segment_logits"):
        assert name in first
    assert "vs bert:first_segment_only" in first and "Better:" in first and "test accuracy" in first
    assert (
        "mean macro_f1" in first.splitlines()[[line.startswith("| model") for line in first.splitlines()].index(True)]
    )
    rows = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    counted = {row["metric"] for row in rows if row["metric"].startswith(("documents_group", "correct_group"))}
    assert {row["metric"] for row in rows} - counted == {
        "accuracy",
        "macro_f1",
        "loss",
        "step_seconds",
        "parameters",
        "token_parameters",
    }
    # per play: documents and correct documents, adding up to the test set and to each run's accuracy
    results = json.loads((tmp_path / "cmp" / "memoria-bert-seed1" / "results.json").read_text())
    plays = results["test_groups"]
    test_size = len(load_classification_data(next((tmp_path / "cmp" / "data").glob("genre-*.json"))).split("test"))
    assert test_size > len(plays) > 1
    assert counted == {f"{name}{g}" for name in ("documents_group", "correct_group") for g in range(len(plays))}
    for model, ablation in {(row["model"], row["ablation"]) for row in rows}:
        mine = {row["metric"]: row["value"] for row in rows if (row["model"], row["ablation"]) == (model, ablation)}
        documents = sum(mine[f"documents_group{g}"] for g in range(len(plays)))
        correct = sum(mine[f"correct_group{g}"] for g in range(len(plays)))
        assert documents == test_size
        assert correct / documents == pytest.approx(mine["accuracy"])
    assert f"test accuracy with 95% intervals over the {len(plays)} test plays" in first
    assert "memoria-bert minus memoria-bert:erased_at_eval" in first
    assert {(row["model"], row["ablation"]) for row in rows} == {
        ("memoria-bert", ""),
        ("memoria-bert", "erased_every_segment"),
        ("memoria-bert", "erased_at_eval"),
        ("memoria-bert", "working_memory_only"),
        ("memoria-bert", "paper_mode"),
        ("bert", "mean_of_segment_logits"),
        ("bert", "first_segment_only"),
    }
    compare_classification(args)
    again = capsys.readouterr().out
    # memoria-bert is read back three times: for itself and for the two entries that test its weights again
    assert again.count("finished, read back") == 7 and ": training" not in again
    assert again.count("testing the weights of") == 2
    assert again[again.index("### genre") :] == first[first.index("### genre") :]
    assert (tmp_path / "cmp" / "comparison.md").read_text().strip() == first[first.index("### genre") :].strip()


def test_evaluation_refuses_data_with_other_labels(tiny_setup, tmp_path):
    data, tokenizer, configs = tiny_setup
    output_dir = tmp_path / "run"
    train_classification(["--dataset=json", f"--data={data}", *common_args(output_dir, configs["plain"], tokenizer)])
    layout = json.loads(data.read_text())
    layout["labels"] = ["cold", "warm"]
    (tmp_path / "other.json").write_text(json.dumps(layout))
    with pytest.raises(ValueError, match=r"labels \['cold', 'warm'\] differ from the checkpoint's"):
        eval_classification(
            [
                f"--checkpoint={output_dir / 'checkpoints' / 'final.ckpt'}",
                "--dataset=json",
                f"--data={tmp_path / 'other.json'}",
                f"--tokenizer={tokenizer}",
                "--accelerator=cpu",
            ]
        )
