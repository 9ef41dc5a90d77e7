"""Engram analysis on a trained Memoria Transformer: primacy, recency and temporal contiguity in real histories.

Loads a trained model (a ``model/`` directory that a train script wrote), switches on Memoria's history
(``memoria_keep_history``), lets it read test sequences segment by segment, one episode per sequence (memory
reset between sequences), once with Memoria in each mode ("reference": memoria-pytorch 1.0.0's behaviour, the one
the model was trained with; "paper": the algorithm as the paper describes it), and measures with
``memoria.analysis``:

- primacy and recency: the reminder rate (reminders per step the engram existed after its creation) of the
  earliest and the latest tenth of an episode's engrams (the last step's, never remindable, left out), minus that
  of the middle third; also with the probability of ever being reminded, which favours early engrams only because
  they exist longer;
- temporal contiguity: how much more often engrams created one step apart are reminded together (in the same
  step, and in consecutive steps) than engrams created 4 to 10 steps apart;

each with a 95% bootstrap interval over episodes and the same statistic after shuffling creation times (the
control that removes any effect of creation order). It also reads the episodes once with the memory erased before
every segment, to show how much the model relies on its memory. Writes effects.json (and, with
``--save-histories``, the histories as gzip JSON) under --output-dir; per mode a serial-position and a lag-CRP
figure, and with ``--gif`` an animation of the first episode (``Memoria-Engrams.gif``), under --images-dir.

Examples:
    python -m experiment.analyze_engrams --model outputs/sorting/T512/memoria-seed42/model \\
        --sorting-data outputs/sorting/data/sort-T512-K10-n3200-100-300-seed0.json
    python -m experiment.analyze_engrams --model ... --sorting-data ... --images-dir images --gif   # README figures

A figure file is written only where --images-dir points; the default is --output-dir, under outputs/.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .cli import make_parser

MODES = ("reference", "paper")


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--model", required=True, help="a trained Memoria Transformer directory (Hugging Face format)")
    parser.add_argument("--sorting-data", required=True, help="sorting-data file; its test split is read")
    parser.add_argument(
        "--segment-length", type=int, help="tokens per segment (default: the training run's, from results.json)"
    )
    parser.add_argument("--num-episodes", type=int, default=100, help="test sequences read, one episode each")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--bootstrap-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="Memoria's tie-breaking noise and the bootstrap")
    parser.add_argument("--output-dir", default="outputs/engrams")
    parser.add_argument("--images-dir", help="where the figures go (default: --output-dir)")
    parser.add_argument("--name", default="sorting", help="prefix of the figure files")
    parser.add_argument("--gif", action="store_true", help="also animate the first episode as Memoria-Engrams.gif")
    parser.add_argument("--gif-mode", choices=MODES, default="reference", help="whose first episode is animated")
    parser.add_argument("--save-histories", action="store_true", help="write every history (gzip JSON, slow)")
    return parser


def training_segment_length(model_dir: Path) -> int:
    """The segment length the model was trained with, from the results.json beside its directory."""
    results = model_dir.parent / "results.json"
    if not results.exists():
        raise ValueError(f"no {results} to read the segment length from: pass --segment-length")
    return int(json.loads(results.read_text())["settings"]["segment_length"])


def load_model(args, mode: Optional[str]):
    """The trained model in eval mode; with ``mode``, Memoria runs in that mode and keeps histories."""
    from transformers import AutoModelForCausalLM

    from . import longseq_formers  # noqa: F401  (registers the models with the Auto classes)

    overrides = {} if mode is None else {"memoria_keep_history": True, "memoria_mode": mode}
    return AutoModelForCausalLM.from_pretrained(args.model, **overrides).eval()


def read_episodes(args, model, erase_memory: bool = False) -> Dict[str, Any]:
    """Reads the first --num-episodes test sequences, one episode each (memory reset between them).

    Returns the target-token accuracy and, when the model keeps histories, one history per episode.
    """
    import torch

    from .longseq_formers.data.sorting import load_sorting_data
    from .longseq_formers.dataset.sorting import IGNORE_INDEX, SortingDataset
    from .longseq_formers.task.base import segment_slices

    dataset = SortingDataset(load_sorting_data(args.sorting_data), "test")
    count = min(args.num_episodes, len(dataset))
    histories, correct, total = [], 0, 0
    torch.manual_seed(args.seed)
    with torch.no_grad():
        for start in range(0, count, args.batch_size):
            rows = [dataset[i] for i in range(start, min(start + args.batch_size, count))]
            input_ids = torch.stack([row["input_ids"] for row in rows])  # [B, T + K]
            labels = torch.stack([row["labels"] for row in rows])  # [B, T + K]
            model.reset_memory()
            for positions in segment_slices(input_ids.size(1), args.segment_length):
                if erase_memory:
                    model.reset_memory()
                logits = model(input_ids=input_ids[:, positions]).logits  # [B, L, V]
                is_target = labels[:, positions] != IGNORE_INDEX
                correct += int((logits.argmax(-1)[is_target] == labels[:, positions][is_target]).sum())
                total += int(is_target.sum())
            if model.config.memoria_keep_history:
                histories.extend(model.transformer.memoria.histories)
            print(f"  {min(start + args.batch_size, count)}/{count} episodes", flush=True)
    return {"histories": histories, "accuracy": correct / max(total, 1)}


def measure_effects(histories: List, samples: int, seed: int) -> Dict[str, Any]:
    """Every effect as a dict (value, interval, control, significant) by name."""
    from dataclasses import asdict

    from memoria.analysis import contiguity, primacy_recency

    effects = {}
    for measure in ("reminder_rate", "p_reminded"):
        primacy, recency = primacy_recency(histories, measure=measure, num_samples=samples, seed=seed)
        effects[f"primacy ({measure})"] = primacy
        effects[f"recency ({measure})"] = recency
    for lag_mode in ("same_step", "next_step"):
        effects[f"contiguity ({lag_mode})"] = contiguity(histories, mode=lag_mode, num_samples=samples, seed=seed)
    return {name: {**asdict(effect), "significant": effect.significant} for name, effect in effects.items()}


def verdict(effect: Dict[str, Any]) -> str:
    """ "effect" (above the null), "reversed" (below it) or "none" (the interval holds the null or meets the
    shuffled control's)."""
    if not effect["significant"]:
        return "none"
    return "effect" if effect["value"] > effect["null_value"] else "reversed"


def format_effects(by_mode: Dict[str, Dict[str, Any]]) -> str:
    """One line per effect and mode: estimate, interval, shuffled control and its interval, verdict."""
    header = f"{'effect':26s} {'mode':9s} {'estimate':>8s} {'95% interval':>18s} {'shuffled':>8s} {'its interval':>18s}"
    lines = [header + "  verdict"]
    for name in next(iter(by_mode.values()))["effects"]:
        for mode, result in by_mode.items():
            e = result["effects"][name]
            interval = f"[{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
            control = f"[{e['control_ci_low']:+.3f}, {e['control_ci_high']:+.3f}]"
            lines.append(
                f"{name:26s} {mode:9s} {e['value']:+8.3f} {interval:>18s} {e['control']:+8.3f} {control:>18s}  "
                f"{verdict(e)}"
            )
    return "\n".join(lines)


def draw(args, recorded: Dict[str, Dict[str, Any]], images_dir: Path) -> List[Path]:
    """Per mode, the serial-position and the lag-CRP figure (each beside its shuffled control) and, with --gif,
    the animation of the first episode."""
    import numpy as np

    from memoria.analysis import episode_from_history, lag_crp, serial_position_curve, shuffle_creation_times
    from memoria.plotting import animate_history, plot_lag_crp, plot_serial_position

    paths = []
    for mode, result in recorded.items():
        histories = result["histories"]
        rng = np.random.default_rng(args.seed)
        shuffled = [shuffle_creation_times(episode_from_history(h), rng) for h in histories]
        title = f"{args.name}, {mode} mode: {len(histories)} episodes of {Path(args.model).parent.name}"
        paths.append(
            plot_serial_position(
                {"recorded": serial_position_curve(histories)},
                images_dir / f"{args.name}-{mode}-serial-position.png",
                controls={"recorded": serial_position_curve(shuffled)},
                title=title,
            )
        )
        crps = {f"{lag} step": lag_crp(histories, mode=f"{lag}_step") for lag in ("same", "next")}
        controls = {f"{lag} step": lag_crp(shuffled, mode=f"{lag}_step") for lag in ("same", "next")}
        paths.append(plot_lag_crp(crps, images_dir / f"{args.name}-{mode}-lag-crp.png", controls, title=title))
    if args.gif:
        mode = args.gif_mode if args.gif_mode in recorded else next(iter(recorded))
        paths.append(animate_history(recorded[mode]["histories"][0], images_dir / "Memoria-Engrams.gif"))
    return paths


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    args.segment_length = args.segment_length or training_segment_length(Path(args.model))
    output_dir = Path(args.output_dir)
    images_dir = Path(args.images_dir or output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    recorded, summary = {}, {}
    for mode in args.modes:
        print(f"== reading {args.num_episodes} episodes with Memoria in {mode} mode", flush=True)
        recorded[mode] = read_episodes(args, load_model(args, mode))
        effects = measure_effects(recorded[mode]["histories"], args.bootstrap_samples, args.seed)
        summary[mode] = {"accuracy": recorded[mode]["accuracy"], "effects": effects}
        if args.save_histories:
            (output_dir / "histories" / mode).mkdir(parents=True, exist_ok=True)
            for index, history in enumerate(recorded[mode]["histories"]):
                history.save(str(output_dir / "histories" / mode / f"episode-{index:04d}.json.gz"))
    print("== reading them again with the memory erased before every segment", flush=True)
    erased = read_episodes(args, load_model(args, None), erase_memory=True)["accuracy"]
    episodes = len(next(iter(recorded.values()))["histories"])
    results = {"settings": vars(args), "episodes": episodes, "accuracy_memory_erased": erased, **summary}
    (output_dir / "effects.json").write_text(json.dumps(results, indent=2) + "\n")
    figures = draw(args, recorded, images_dir)

    print(f"\n{episodes} episodes of {args.model}, one model; intervals are 95% bootstrap over episodes")
    print(format_effects(summary))
    accuracies = ", ".join(f"{mode} mode {result['accuracy']:.4f}" for mode, result in summary.items())
    print(f"\ntest target accuracy while recording: {accuracies}; memory erased every segment {erased:.4f}")
    print(f"Outputs: {output_dir / 'effects.json'}; figures: {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
