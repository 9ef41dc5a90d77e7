"""experiment.analyze_engrams end to end: a tiny Memoria Transformer trained for 2 steps, read in both modes."""

import json

import pytest

from experiment import analyze_engrams, train_sorting
from memoria import HistoryManager

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def trained_model(tiny_data_file, tiny_config_files, tmp_path):
    output_dir = tmp_path / "run"
    train_sorting.main(
        [
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
    analyze_engrams.main(
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
    for mode in analyze_engrams.MODES:
        assert 0 <= results[mode]["accuracy"] <= 1
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


def test_the_training_segment_length_is_required_without_results_json(tmp_path, tiny_data_file):
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="--segment-length"):
        analyze_engrams.main([f"--model={tmp_path / 'model'}", f"--sorting-data={tiny_data_file}"])
