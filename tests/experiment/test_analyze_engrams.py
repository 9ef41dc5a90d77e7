"""`analyze sorting`, `analyze language-modeling` and `analyze recall` end to end on tiny Memoria Transformers."""

import json

import pytest
import torch

from experiment.__main__ import main
from experiment.recipes.engrams import MODES
from memoria import HistoryManager
from tests.experiment.tiny import TINY_RECALL

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")


def analyze(argv):
    """``analyze sorting`` when the arguments name --sorting-data, else ``analyze language-modeling``."""
    task = "sorting" if any(argument.startswith("--sorting-data") for argument in argv) else "language-modeling"
    return main(["analyze", task, *argv])


@pytest.fixture
def trained_model(tiny_data_file, tiny_config_files, tmp_path):
    output_dir = tmp_path / "run"
    main(
        [
            "train",
            "sorting",
            f"--data={tiny_data_file}",
            f"--model-config={tiny_config_files['memoria']}",
            f"--output-dir={output_dir}",
            "--segment-length=8",
            "--batch-size=4",
            "--max-steps=2",
            "--val-check-interval=2",
            "--eval-batch-size=4",
            "--accelerator=cpu",
            "--devices=1",
            "--no-progress-bar",
        ]
    )
    return output_dir / "model"


def test_effects_figures_animation_and_histories_are_written(trained_model, tiny_data_file, tmp_path, capsys):
    output_dir, images_dir = tmp_path / "engrams", tmp_path / "images"
    analyze(
        [
            f"--model={trained_model}",
            f"--sorting-data={tiny_data_file}",
            "--num-episodes=6",
            "--batch-size=3",
            "--bootstrap-samples=20",
            f"--output-dir={output_dir}",
            f"--images-dir={images_dir}",
            "--gif",
            "--save-histories",
        ]
    )
    results = json.loads((output_dir / "effects.json").read_text())
    assert results["episodes"] == 6 and results["settings"]["segment_length"] == 8  # read from results.json
    assert 0 <= results["accuracy_memory_erased"] <= 1
    for mode in MODES:
        assert 0 <= results[mode]["accuracy"] <= 1
        assert -1 <= results[mode]["working_memory_cosine"] <= 1
        effects = results[mode]["effects"]
        assert set(effects) == {
            f"{effect} ({measure})" for effect in ("primacy", "recency") for measure in ("reminder_rate", "p_reminded")
        } | {"contiguity (same_step)", "contiguity (next_step)"}
        for effect in effects.values():  # 3 steps per episode: the values themselves mean little here
            assert {"value", "ci_low", "ci_high", "control", "null_value"} <= set(effect)
            assert isinstance(effect["significant"], bool)
        for kind in ("serial-position", "lag-crp"):
            with Image.open(images_dir / f"sorting-{mode}-{kind}.png") as image:
                assert image.format == "PNG"
        saved = sorted((output_dir / "histories" / mode).glob("*.json.gz"))
        assert len(saved) == 6
    # 24 symbols + separator + 7 targets in segments of 8: 4 segments, Memoria steps from the second on
    first = HistoryManager.load(str(output_dir / "histories" / "reference" / "episode-0000.json.gz"))
    assert first.timestep == 3
    with Image.open(images_dir / "Memoria-Engrams.gif") as gif:
        assert gif.n_frames == first.timestep
    out = capsys.readouterr().out
    assert "contiguity (next_step)" in out and "memory erased every segment" in out
    assert "mean pairwise cosine of the Abstractor's outputs" in out


def test_the_training_segment_length_is_required_without_results_json(tmp_path, tiny_data_file):
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="--segment-length"):
        analyze([f"--model={tmp_path / 'model'}", f"--sorting-data={tiny_data_file}"])


@pytest.fixture
def tiny_language_model(tiny_memoria_config, tmp_path):
    """A tiny Memoria language model over bytes, as a run directory: model/, tokenizer/ and results.json."""
    from experiment.data.language_modeling import ByteTokenizer
    from experiment.models.gpt2_with_memoria import GPT2WithMemoriaLMHeadModel

    run = tmp_path / "lm-run"
    GPT2WithMemoriaLMHeadModel(tiny_memoria_config(vocab_size=256)).save_pretrained(run / "model")
    ByteTokenizer().save(run / "tokenizer")
    (run / "results.json").write_text(json.dumps({"settings": {"segment_length": 8, "dataset": "pg19"}}))
    return run / "model"


@pytest.fixture
def tiny_pg19(tmp_path):
    """A PG-19 directory of 2 books per split; the test split holds 2 x 200 bytes."""
    root = tmp_path / "pg19"
    for index, split in enumerate(("train", "validation", "test")):
        (root / split).mkdir(parents=True)
        for book in range(2):
            (root / split / f"{10 * index + book}.txt").write_text(
                "".join(chr(97 + (7 * i + book) % 26) for i in range(200))
            )
    return root


def test_language_modeling_episodes_give_effects_perplexities_and_figures(
    tiny_language_model, tiny_pg19, tmp_path, capsys
):
    output_dir, images_dir = tmp_path / "engrams", tmp_path / "images"
    analyze(
        [
            f"--model={tiny_language_model}",
            f"--corpus={tiny_pg19}",
            "--episode-segments=4",
            "--num-episodes=20",
            "--batch-size=5",
            "--bootstrap-samples=20",
            f"--output-dir={output_dir}",
            f"--images-dir={images_dir}",
            "--save-histories",
        ]
    )
    results = json.loads((output_dir / "effects.json").read_text())
    # 400 bytes, no end-of-text token: 399 (input, next byte) pairs, 12 full episodes of 4 x 8 (the 13th is cut)
    assert results["episodes"] == 12
    assert results["settings"]["segment_length"] == 8 and results["settings"]["dataset"] == "pg19"
    assert 1 < results["ppl_memory_erased"]
    for mode in MODES:
        assert 1 < results[mode]["ppl"] < 10 * 256  # an untrained model: near the vocabulary size
        assert len(results[mode]["effects"]) == 6
        for kind in ("serial-position", "lag-crp"):
            with Image.open(images_dir / f"lm-{mode}-{kind}.png") as image:
                assert image.format == "PNG"
        saved = sorted((output_dir / "histories" / mode).glob("*.json.gz"))
        assert len(saved) == 12
        assert HistoryManager.load(str(saved[0])).timestep == 3  # 4 segments: Memoria steps from the second on
    out = capsys.readouterr().out
    assert "test perplexity while recording" in out and "12/12 episodes" in out


def test_language_modeling_episodes_need_enough_tokens_and_a_tokenizer_the_model_can_read(
    tiny_language_model, tiny_memoria_config, tiny_pg19, tmp_path
):
    from experiment.models.gpt2_with_memoria import GPT2WithMemoriaLMHeadModel

    with pytest.raises(ValueError, match="--episode-segments 100"):  # 399 tokens, episodes of 800
        analyze([f"--model={tiny_language_model}", f"--corpus={tiny_pg19}", "--episode-segments=100"])
    small = tmp_path / "small-vocabulary"
    GPT2WithMemoriaLMHeadModel(tiny_memoria_config(vocab_size=100)).save_pretrained(small)
    tokenizer = tiny_language_model.parent / "tokenizer"
    with pytest.raises(ValueError, match="256 tokens, more than the model's vocabulary"):
        analyze(
            [
                f"--model={small}",
                f"--corpus={tiny_pg19}",
                f"--tokenizer={tokenizer}",
                "--segment-length=8",
                "--dataset=pg19",
            ]
        )


def test_mean_pairwise_cosine_against_every_pair_by_hand():
    from experiment.recipes.engrams import mean_pairwise_cosine

    memories = torch.randn(3, 5, 8, generator=torch.Generator().manual_seed(0))
    by_hand = torch.stack(
        [
            torch.stack(
                [
                    torch.nn.functional.cosine_similarity(row[i], row[j], dim=0)
                    for i in range(5)
                    for j in range(5)
                    if i != j
                ]
            ).mean()
            for row in memories
        ]
    )
    torch.testing.assert_close(mean_pairwise_cosine(memories), by_hand)
    copied = memories[:, :1].expand(3, 5, 8) * torch.arange(1.0, 6.0)[None, :, None]  # one direction, scaled
    torch.testing.assert_close(mean_pairwise_cosine(copied), torch.ones(3))
    torch.testing.assert_close(mean_pairwise_cosine(torch.eye(4)[None]), torch.zeros(1))
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_cosine(memories[:, :1])


@pytest.fixture
def tiny_recall_model(tiny_memoria_config, tmp_path):
    """A tiny Memoria Transformer with an Abstractor as a recall run directory: model/ and results.json (seed 5)."""
    from experiment.data.recall import RecallSpec
    from experiment.models.gpt2_with_memoria import GPT2WithMemoriaLMHeadModel
    from experiment.recipes.recall import RecallData

    data = RecallData.create(**TINY_RECALL)
    spec = RecallSpec(**data.spec_fields(8))
    run = tmp_path / "recall-run"
    torch.manual_seed(0)
    GPT2WithMemoriaLMHeadModel(tiny_memoria_config(vocab_size=spec.vocab_size)).save_pretrained(run / "model")
    (run / "results.json").write_text(json.dumps({"settings": {**data.to_dict(), "segment_length": 8, "seed": 5}}))
    return run / "model"


def recall_samples(seed, count):
    """The first ``count`` test samples of the tiny recall data's stream ``seed``: input_ids and labels."""
    from experiment.data.recall import RecallDataset, RecallSpec
    from experiment.recipes.recall import RecallData

    dataset = RecallDataset(RecallSpec(**RecallData.create(**TINY_RECALL).spec_fields(8)), "test", count, seed)
    return [torch.stack([dataset[i][key] for i in range(count)]) for key in ("input_ids", "labels")]


def test_recall_episodes_are_the_runs_own_test_samples_and_the_abstractor_is_measured(
    tiny_recall_model, tmp_path, capsys
):
    from experiment.recipes.recall import RecallEngrams

    settings = RecallEngrams.create(model=str(tiny_recall_model), num_episodes=3)
    vocab_size = json.loads((tiny_recall_model / "config.json").read_text())["vocab_size"]
    for episodes, expected in zip(settings.episodes(vocab_size), recall_samples(5, 3)):
        torch.testing.assert_close(episodes, expected)  # the run's seed: its own test set
    other = RecallEngrams.create(model=str(tiny_recall_model), num_episodes=3, data_seed=6).episodes(vocab_size)
    torch.testing.assert_close(other[0], recall_samples(6, 3)[0])
    assert not torch.equal(other[0], settings.episodes(vocab_size)[0])
    with pytest.raises(ValueError, match="give 12 token ids but --model"):
        settings.episodes(vocab_size + 1)

    output_dir = tmp_path / "engrams"
    main(
        [
            "analyze",
            "recall",
            f"--model={tiny_recall_model}",
            "--num-episodes=6",
            "--batch-size=3",
            "--bootstrap-samples=20",
            "--modes",
            "reference",
            f"--output-dir={output_dir}",
        ]
    )
    results = json.loads((output_dir / "effects.json").read_text())
    assert results["episodes"] == 6 and results["settings"]["segment_length"] == 8  # read from results.json
    assert 0 <= results["accuracy_memory_erased"] <= 1 and 0 <= results["reference"]["accuracy"] <= 1
    assert -1 <= results["reference"]["working_memory_cosine"] <= 1
    out = capsys.readouterr().out
    assert "6/6 episodes" in out and "mean pairwise cosine of the Abstractor's outputs" in out


def test_untrained_reads_the_architecture_freshly_initialised_from_the_seed(tiny_recall_model):
    from experiment.recipes.engrams import load_model
    from experiment.recipes.recall import RecallEngrams

    def weights(**changes):
        model = load_model(RecallEngrams.create(model=str(tiny_recall_model), **changes), None)
        return torch.cat([parameter.detach().flatten() for parameter in model.parameters()])

    trained, fresh = weights(), weights(untrained=True, seed=1)
    assert trained.shape == fresh.shape and not torch.equal(trained, fresh)
    torch.testing.assert_close(weights(untrained=True, seed=1), fresh)
    assert not torch.equal(weights(untrained=True, seed=2), fresh)
