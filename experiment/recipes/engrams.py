"""Engram analysis on a trained Memoria Transformer: primacy, recency and temporal contiguity in real histories.

Loads a trained model (a ``model/`` directory that ``train`` wrote), switches on Memoria's history
(``memoria_keep_history``), lets it read test episodes segment by segment (memory reset between episodes), once
with Memoria in each mode ("reference": memoria-pytorch 1.0.0's behaviour, the one
the model was trained with; "paper": the algorithm as the paper describes it), and measures with
``memoria.analysis``. Two kinds of episode:

- sorting (``--sorting-data``): one test sequence per episode; the score is the target-token accuracy;
- language modelling (``--corpus``, a corpus directory as ``train language-modeling`` reads it, e.g. PG-19's layout):
  the test split is tokenised with the run's tokenizer, joined (documents separated by the end-of-text token, as
  ``--document-boundaries carry`` reads it) and cut into consecutive episodes of ``--episode-segments`` segments;
  a last episode that the split does not fill is left out. The score is the perplexity over the episodes;
- recall (``analyze recall``): the run's own test samples (its data settings and seed, from results.json), one
  episode per sample; the score is the accuracy over every query.

The effects:

- primacy and recency: the reminder rate (reminders per step the engram existed after its creation) of the
  earliest and the latest tenth of an episode's engrams (the last step's, never remindable, left out), minus that
  of the middle third; also with the probability of ever being reminded, which favours early engrams only because
  they exist longer;
- temporal contiguity: how much more often engrams created one step apart are reminded together (in the same
  step, and in consecutive steps) than engrams created 4 to 10 steps apart;

each with a 95% bootstrap interval over episodes and the same statistic after shuffling creation times (the
control that removes any effect of creation order). It also reads the episodes once with the memory erased before
every segment, to show how much the model relies on its memory (the first segment of an episode has none either way),
and reports what the working memory carries: the mean pairwise cosine of the Abstractor's outputs (its working
memories; near 1 when they are one average copied, as at initialisation). Writes effects.json (and, with
``--save-histories``, the histories as gzip JSON) under --output-dir; per mode a serial-position and a lag-CRP
figure, and with ``--gif`` an animation of the first episode (``Memoria-Engrams.gif``), under --images-dir.

Examples:
    python -m experiment analyze sorting --model outputs/sorting/T512/memoria-seed42/model \\
        --sorting-data outputs/sorting/data/sort-T512-K10-n3200-100-300-seed0.json
    python -m experiment analyze sorting --model ... --sorting-data ... --images-dir images --gif   # README figures
    python -m experiment analyze language-modeling --model outputs/language_modeling/memoria-seed42/model \
        --corpus outputs/data/gutenberg/pg19 --episode-segments 16   # tokenizer and segment length: the run's
    python -m experiment analyze recall --model outputs/recall/memoria-abstractor-seed42/model --modes reference

A figure file is written only where --images-dir points; the default is --output-dir, under outputs/.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..settings import Settings, option

MODES = ("reference", "paper")


@dataclass
class EngramSettings(Settings):
    """The trained model, its test episodes and what is measured and drawn."""

    model: str = option(None, "a trained Memoria Transformer directory (Hugging Face format)", required=True)
    sorting_data: Optional[str] = option(None, "sorting-data file; its test split is read, one episode per sequence")
    corpus: Optional[str] = option(None, "language-modelling corpus directory; its test split is read")
    dataset: Optional[str] = option(None, "the corpus's format: pg19, wikitext103 or enwik8 (None: the run's)")
    tokenizer: Optional[str] = option(None, "the run's tokenizer directory (None: tokenizer/ beside --model)")
    episode_segments: int = option(16, "segments per language-modelling episode")
    segment_length: Optional[int] = option(None, "tokens per segment (None: the training run's, from results.json)")
    num_episodes: int = option(100, "test episodes read")
    batch_size: int = option(25, "episodes read at once")
    modes: List[str] = option(list(MODES), "Memoria's modes to record")
    bootstrap_samples: int = option(1000, "bootstrap resamples of the intervals")
    seed: int = option(0, "Memoria's tie-breaking noise and the bootstrap")
    output_dir: str = option("outputs/engrams", "where effects.json (and the histories) go")
    images_dir: Optional[str] = option(None, "where the figures go (None: --output-dir)")
    name: Optional[str] = option(None, "prefix of the figure files")
    gif: bool = option(False, "also animate the first episode as Memoria-Engrams.gif")
    gif_mode: str = option("reference", "whose first episode is animated", MODES)
    save_histories: bool = option(False, "write every history (gzip JSON, slow)")
    untrained: bool = option(False, "read with --model's architecture freshly initialised (--seed): the control")

    @property
    def metric(self) -> str:
        """The episodes' score: "accuracy" (of the scored tokens' argmax) or "ppl" (language modelling)."""
        return "accuracy" if self.corpus is None else "ppl"

    def episodes(self, vocab_size: int) -> Tuple[Any, Any]:
        """The test episodes: input_ids and labels, int64 [NumEpisodes, Length] (a task's settings may read others)."""
        if self.corpus is None:
            return sorting_episodes(self)
        return language_modeling_episodes(self, vocab_size)


def training_settings(model_dir: Path, what: str = "settings", flag: str = "--model") -> Dict[str, Any]:
    """Every setting of the training run, from the results.json beside the model directory."""
    results = model_dir.parent / "results.json"
    if not results.exists():
        raise ValueError(f"no {results} to read the run's {what} from: pass {flag}")
    return json.loads(results.read_text())["settings"]


def training_setting(model_dir: Path, key: str, flag: str) -> Any:
    """The training run's setting ``key``, from the results.json beside the model directory."""
    settings = training_settings(model_dir, key, flag)
    results = model_dir.parent / "results.json"
    if key not in settings:
        raise ValueError(f"{results} has no setting {key!r}: pass {flag}")
    return settings[key]


def training_segment_length(model_dir: Path) -> int:
    """The segment length the model was trained with, from the results.json beside its directory."""
    return int(training_setting(model_dir, "segment_length", "--segment-length"))


def load_model(args, mode: Optional[str]):
    """The trained model in eval mode (with --untrained, its architecture freshly initialised from --seed); with
    ``mode``, Memoria runs in that mode and keeps histories."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from .. import models  # noqa: F401  (registers the models with the Auto classes)

    overrides = {} if mode is None else {"memoria_keep_history": True, "memoria_mode": mode}
    if args.untrained:
        torch.manual_seed(args.seed)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model, **overrides)).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(args.model, **overrides).eval()
    if mode is not None:
        model.transformer.memoria.history_window = None  # an episode is analysed whole, from its first step
    return model


def sorting_episodes(args):
    """The first --num-episodes test sequences of --sorting-data: input_ids and labels, int64 [NumEpisodes, T + K]."""
    import torch

    from ..data.sorting import load_sorting_data
    from ..datasets.sorting import SortingDataset

    dataset = SortingDataset(load_sorting_data(args.sorting_data), "test")
    rows = [dataset[i] for i in range(min(args.num_episodes, len(dataset)))]
    return torch.stack([row["input_ids"] for row in rows]), torch.stack([row["labels"] for row in rows])


def language_modeling_episodes(args, vocab_size: int):
    """The first --num-episodes consecutive episodes of --episode-segments segments of the corpus's test split.

    Returns:
        input_ids and labels, int64 [NumEpisodes, EpisodeSegments * SegmentLength]: each label is the next token.

    Raises:
        ValueError: when the tokenizer's ids do not fit the model's vocabulary, or the test split is shorter than
            one episode.
    """
    import torch

    from ..data.language_modeling import IGNORE_INDEX, load_corpus, load_tokenizer, make_windows

    if args.episode_segments < 1:
        raise ValueError(f"--episode-segments must be at least 1, got {args.episode_segments}")
    tokenizer = load_tokenizer(args.tokenizer)
    if tokenizer.vocab_size > vocab_size:
        raise ValueError(
            f"--tokenizer {args.tokenizer} has {tokenizer.vocab_size} tokens, more than the model's vocabulary "
            f"({vocab_size}): pass the tokenizer the model was trained with"
        )
    documents = tokenizer.encode_documents(load_corpus(args.dataset, args.corpus)["test"])
    length = args.episode_segments * args.segment_length
    windows = make_windows(documents, 1, length, tokenizer.eos_id, "carry")  # one stream: consecutive episodes
    input_ids, labels = windows.input_ids[:, 0], windows.labels[:, 0]  # [NumWindows, Length]
    full = (labels != IGNORE_INDEX).all(axis=1)  # only the last window can be padded
    if not full.any():
        raise ValueError(
            f"the test split of --corpus {args.corpus} has {windows.num_tokens} tokens, fewer than one episode of "
            f"--episode-segments {args.episode_segments} x --segment-length {args.segment_length}"
        )
    count = min(args.num_episodes, int(full.sum()))
    return torch.from_numpy(input_ids[full][:count]), torch.from_numpy(labels[full][:count])


def mean_pairwise_cosine(memories):
    """The mean cosine similarity over every pair of distinct working memories of each row.

    Args:
        memories: the Abstractor's outputs, shaped [BatchSize, NumMemories, HiddenDim] (NumMemories at least 2).

    Returns:
        shaped [BatchSize]: 1 when a row's memories all point one way (one vector copied), about 0 when unrelated.
    """
    import torch.nn.functional as F

    count = memories.size(1)
    if count < 2:
        raise ValueError(f"memories must hold at least 2 vectors per row, got shape {tuple(memories.shape)}")
    unit = F.normalize(memories.float(), dim=-1)  # [B, N, D]
    cosines = unit @ unit.transpose(1, 2)  # [B, N, N]
    off_diagonal = cosines.sum(dim=(1, 2)) - cosines.diagonal(dim1=1, dim2=2).sum(dim=1)  # [B]
    return off_diagonal / (count * (count - 1))


def read_episodes(args, model, erase_memory: bool = False) -> Dict[str, Any]:
    """Reads the episodes (sorting sequences or corpus episodes) --batch-size at a time, memory reset between them.

    Returns the score (sorting: "accuracy", the target-token accuracy; language modelling: "ppl", the perplexity
    over every token of the episodes), "working_memory_cosine" (the mean over rows and segments of
    :func:`mean_pairwise_cosine` of what the Abstractor wrote; None without an Abstractor) and, when the model keeps
    histories, "histories": one per episode.
    """
    import torch
    import torch.nn.functional as F

    from ..datasets.sorting import IGNORE_INDEX
    from ..tasks.base import segment_slices

    input_ids, labels = args.episodes(model.config.vocab_size)
    count = input_ids.size(0)
    histories, score, total = [], 0.0, 0
    cosines: List[Any] = []  # [B] per Abstractor call
    abstractor = getattr(model.transformer, "abstractor", None)
    hook = None
    if abstractor is not None:
        hook = abstractor.register_forward_hook(
            lambda module, inputs, output: cosines.append(mean_pairwise_cosine(output))
        )
    torch.manual_seed(args.seed)
    with torch.no_grad():
        for start in range(0, count, args.batch_size):
            batch = slice(start, min(start + args.batch_size, count))
            model.reset_memory()
            for positions in segment_slices(input_ids.size(1), args.segment_length):
                if erase_memory:
                    model.reset_memory()
                logits = model(input_ids=input_ids[batch, positions]).logits  # [B, L, V]
                targets = labels[batch, positions]  # [B, L]
                scored = targets != IGNORE_INDEX
                if args.metric == "accuracy":
                    score += int((logits.argmax(-1)[scored] == targets[scored]).sum())
                else:
                    score += float(F.cross_entropy(logits[scored].float(), targets[scored], reduction="sum"))
                total += int(scored.sum())
            if model.config.memoria_keep_history:
                histories.extend(model.transformer.memoria.histories)
            print(f"  {batch.stop}/{count} episodes", flush=True)
    if hook is not None:
        hook.remove()
    cosine = float(torch.cat(cosines).mean()) if cosines else None
    value = score / max(total, 1) if args.metric == "accuracy" else math.exp(score / max(total, 1))
    return {"histories": histories, args.metric: value, "working_memory_cosine": cosine}


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


def analyze(args: EngramSettings) -> Dict[str, Any]:
    """Reads the episodes in each mode, measures the effects, writes effects.json and the figures; returns the
    effects."""
    for mode in args.modes:
        if mode not in MODES:
            raise ValueError(f"--modes must be among {MODES}, got {mode!r}")
    args.segment_length = args.segment_length or training_segment_length(Path(args.model))
    if args.corpus is not None:
        args.dataset = args.dataset or training_setting(Path(args.model), "dataset", "--dataset")
        args.tokenizer = args.tokenizer or str(Path(args.model).parent / "tokenizer")
    args.name = args.name or ("sorting" if args.corpus is None else "lm")
    metric = args.metric
    output_dir = Path(args.output_dir)
    images_dir = Path(args.images_dir or output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    recorded, summary = {}, {}
    for mode in args.modes:
        print(f"== reading the test episodes (at most {args.num_episodes}) with Memoria in {mode} mode", flush=True)
        recorded[mode] = read_episodes(args, load_model(args, mode))
        effects = measure_effects(recorded[mode]["histories"], args.bootstrap_samples, args.seed)
        summary[mode] = {
            metric: recorded[mode][metric],
            "working_memory_cosine": recorded[mode]["working_memory_cosine"],
            "effects": effects,
        }
        if args.save_histories:
            (output_dir / "histories" / mode).mkdir(parents=True, exist_ok=True)
            for index, history in enumerate(recorded[mode]["histories"]):
                history.save(str(output_dir / "histories" / mode / f"episode-{index:04d}.json.gz"))
    print("== reading them again with the memory erased before every segment", flush=True)
    erased = read_episodes(args, load_model(args, None), erase_memory=True)[metric]
    episodes = len(next(iter(recorded.values()))["histories"])
    results = {"settings": args.to_dict(), "episodes": episodes, f"{metric}_memory_erased": erased, **summary}
    (output_dir / "effects.json").write_text(json.dumps(results, indent=2) + "\n")
    figures = draw(args, recorded, images_dir)

    which = f"{args.model}'s architecture freshly initialised (seed {args.seed})" if args.untrained else args.model
    print(f"\n{episodes} episodes of {which}, one model; intervals are 95% bootstrap over episodes")
    print(format_effects(summary))
    scores = ", ".join(f"{mode} mode {result[metric]:.4f}" for mode, result in summary.items())
    what = "test accuracy of the scored tokens" if metric == "accuracy" else "test perplexity"
    print(f"\n{what} while recording: {scores}; memory erased every segment {erased:.4f}")
    cosine = next(iter(summary.values()))["working_memory_cosine"]
    if cosine is not None:
        print(
            f"working memory: mean pairwise cosine of the Abstractor's outputs {cosine:.4f} (1: the working memories "
            "are one vector copied; about 0: unrelated)"
        )
    print(f"Outputs: {output_dir / 'effects.json'}; figures: {', '.join(map(str, figures))}")
    return results
