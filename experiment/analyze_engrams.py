"""Engram analysis on a trained Memoria Transformer: primacy, recency and temporal contiguity in real histories.

Loads a trained model (a ``model/`` directory that a train script wrote), switches on Memoria's history
(``memoria_keep_history``), lets it read test sequences segment by segment, one episode per sequence (memory
reset between sequences), once with Memoria in each mode ("reference": memoria-pytorch 1.0.0's behaviour, the one
the model was trained with; "paper": the algorithm as the paper describes it), and measures with
``memoria.analysis``:

- primacy and recency: the reminder rate (reminders per step the engram existed after its creation) of the
  earliest and the latest tenth of an episode's engrams, minus that of the middle third; also with the
  probability of ever being reminded, which favours early engrams only because they exist longer;
- temporal contiguity: how much more often engrams created one step apart are reminded together (in the same
  step, and in consecutive steps) than engrams created 4 to 10 steps apart;

each with a 95% bootstrap interval over episodes and the same statistic after shuffling creation times (the
control that removes any effect of creation order). Writes effects.json, the histories (gzip JSON), plots and,
with ``--gif``, an animation of one episode, under --output-dir (figures under --images-dir).

Examples:
    python -m experiment.analyze_engrams --model outputs/sorting/T512/memoria-seed42/model \\
        --sorting-data outputs/sorting/data/sort-T512-K10-n3200-100-300-seed0.json
    python -m experiment.analyze_engrams --model ... --sorting-data ... --images-dir images --gif   # README figures
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
    return parser


def training_segment_length(model_dir: Path) -> int:
    """The segment length the model was trained with, from the results.json beside its directory."""
    results = model_dir.parent / "results.json"
    if not results.exists():
        raise ValueError(f"no {results} to read the segment length from: pass --segment-length")
    return int(json.loads(results.read_text())["settings"]["segment_length"])


def record_histories(args, mode: str) -> Dict[str, Any]:
    """Reads the episodes with Memoria in ``mode``; returns their histories and the target-token accuracy."""
    import torch
    from transformers import AutoModelForCausalLM

    from .longseq_formers.data.sorting import load_sorting_data
    from .longseq_formers.dataset.sorting import IGNORE_INDEX, SortingDataset
    from .longseq_formers.task.base import segment_slices

    model = AutoModelForCausalLM.from_pretrained(args.model, memoria_keep_history=True, memoria_mode=mode).eval()
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
                logits = model(input_ids=input_ids[:, positions]).logits  # [B, L, V]
                is_target = labels[:, positions] != IGNORE_INDEX
                correct += int((logits.argmax(-1)[is_target] == labels[:, positions][is_target]).sum())
                total += int(is_target.sum())
            histories.extend(model.transformer.memoria.histories)
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


def format_effects(by_mode: Dict[str, Dict[str, Any]]) -> str:
    """One line per effect and mode: estimate, interval, shuffled control, whether it is an effect."""
    lines = [f"{'effect':30s} {'mode':10s} {'estimate':>9s} {'95% interval':>20s} {'shuffled':>9s}  verdict"]
    for name in next(iter(by_mode.values()))["effects"]:
        for mode, result in by_mode.items():
            e = result["effects"][name]
            verdict = "effect" if e["significant"] else "no effect (interval holds the null or meets the control)"
            interval = f"[{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
            lines.append(f"{name:30s} {mode:10s} {e['value']:+9.3f} {interval:>20s} {e['control']:+9.3f}  {verdict}")
    return "\n".join(lines)


def draw(args, recorded: Dict[str, Dict[str, Any]], images_dir: Path) -> List[Path]:
    """The serial-position and lag-CRP figures (one line per mode) and, with --gif, the animation."""
    from memoria.analysis import lag_crp, serial_position_curve
    from memoria.plotting import animate_history, plot_lag_crp, plot_serial_position

    curves = {mode: serial_position_curve(result["histories"]) for mode, result in recorded.items()}
    crps = {mode: lag_crp(result["histories"]) for mode, result in recorded.items()}
    episodes = len(next(iter(recorded.values()))["histories"])
    title = f"{args.name}: {episodes} episodes of {Path(args.model).parent.name}"
    paths = [
        plot_serial_position(curves, images_dir / f"{args.name}-serial-position.png", title=title),
        plot_lag_crp(crps, images_dir / f"{args.name}-lag-crp.png", title=title),
    ]
    if args.gif:
        first_mode = next(iter(recorded))
        paths.append(animate_history(recorded[first_mode]["histories"][0], images_dir / "Memoria-Engrams.gif"))
    return paths


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    args.segment_length = args.segment_length or training_segment_length(Path(args.model))
    output_dir = Path(args.output_dir)
    images_dir = Path(args.images_dir or output_dir)
    recorded, summary = {}, {}
    for mode in args.modes:
        print(f"== reading {args.num_episodes} episodes with Memoria in {mode} mode", flush=True)
        recorded[mode] = record_histories(args, mode)
        effects = measure_effects(recorded[mode]["histories"], args.bootstrap_samples, args.seed)
        summary[mode] = {"accuracy": recorded[mode]["accuracy"], "effects": effects}
        for index, history in enumerate(recorded[mode]["histories"]):
            (output_dir / "histories" / mode).mkdir(parents=True, exist_ok=True)
            history.save(str(output_dir / "histories" / mode / f"episode-{index:04d}.json.gz"))
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "effects.json").write_text(json.dumps({"settings": vars(args), **summary}, indent=2) + "\n")
    figures = draw(args, recorded, images_dir)

    print("\n" + format_effects(summary))
    accuracies = ", ".join(f"{mode} {result['accuracy']:.4f}" for mode, result in summary.items())
    print(f"\ntest target accuracy while recording: {accuracies}")
    print(f"Outputs: {output_dir} (effects.json, histories/); figures: {', '.join(map(str, figures))}")


if __name__ == "__main__":
    main()
