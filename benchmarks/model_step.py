"""Ops, host syncs and CPU time per segment of a training step of the experiment's models, side by side.

A training step of a segment is the forward pass with labels, ``backward`` and an AdamW step, one per segment; a
sample is ``--segments`` segments of ``--batch-size`` rows of ``--length`` tokens, its memory reset first (every
row: a new batch of samples). Each model runs one untimed sample, then ``--samples`` samples alternately (the
models take turns, so both see the same machine load); the ops and syncs of one sample are counted with
:func:`benchmarks.counting.count` and divided by the number of segments, and the CPU time per segment is the median
over the timed samples. The defaults compare the shipped small sorting Memoria Transformer with the plain one::

    python -m benchmarks.model_step
    python -m benchmarks.model_step --configs experiment/configs/memoria-gpt2-sort-small.json:memoria_mode=paper
    python -m benchmarks.model_step --accelerator-path --optimizer for-loop

``--optimizer`` picks AdamW's implementation (``fused`` by default, what a GPU run would use) and
``--accelerator-path`` runs Memoria's accelerator path on the CPU, so that the counts are those of a GPU step.
"""

import argparse
import json
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from benchmarks.counting import count
from memoria.utils import accelerator_path

CONFIGS = Path(__file__).resolve().parent.parent / "experiment" / "configs"
OPTIMIZERS = {"fused": dict(fused=True), "foreach": dict(foreach=True), "for-loop": dict(foreach=False)}
"""AdamW's implementations. "fused" (one kernel for all parameters) reads no step count on the host; "foreach" and
"for-loop" (the CPU's default) read each parameter's step count with ``.item()``, a CPU scalar on any device,
which the counter still counts as a sync, so the model with more parameter tensors shows more syncs."""
DEFAULT_CONFIGS = [str(CONFIGS / "memoria-gpt2-sort-small.json"), str(CONFIGS / "gpt2-sort-small.json")]


def parse_spec(spec: str) -> Tuple[Path, Dict[str, Any]]:
    """``path[:FIELD=VALUE,...]`` as the configuration's path and its overrides (values read as JSON when they
    parse, else as strings)."""
    path, _, overrides = spec.partition(":")
    fields: Dict[str, Any] = {}
    for item in filter(None, overrides.split(",")):
        name, _, value = item.partition("=")
        try:
            fields[name] = json.loads(value)
        except json.JSONDecodeError:
            fields[name] = value
    return Path(path), fields


def build_model(spec: str, seed: int) -> torch.nn.Module:
    """A freshly initialised causal LM of the configuration ``spec`` names, in training mode."""
    from transformers import AutoConfig, AutoModelForCausalLM

    import experiment.models  # noqa: F401  (registers the models)

    path, overrides = parse_spec(spec)
    config = AutoConfig.from_pretrained(path, **overrides)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).train()


class SampleTrainer:
    """Trains one model on samples of segments: reset, then forward with labels, backward and AdamW per segment."""

    def __init__(self, model: torch.nn.Module, optimizer: str = "fused", accelerator: bool = False) -> None:
        self.model = model
        self.accelerator = accelerator
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **OPTIMIZERS[optimizer])

    def train_sample(self, segments: List[torch.Tensor]) -> None:
        """One sample: ``segments``, each token ids shaped [BatchSize, Length], in order on a reset memory."""
        with accelerator_path() if self.accelerator else nullcontext():
            self._train_sample(segments)

    def _train_sample(self, segments: List[torch.Tensor]) -> None:
        self.model.reset_memory()
        for input_ids in segments:
            loss = self.model(input_ids=input_ids, labels=input_ids).loss
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)


def make_sample(vocab_size: int, segments: int, batch_size: int, length: int, generator: torch.Generator):
    """``segments`` random segments of token ids, each shaped [BatchSize, Length]."""
    return [torch.randint(0, vocab_size, (batch_size, length), generator=generator) for _ in range(segments)]


def measure(
    specs: List[str],
    segments: int,
    batch_size: int,
    length: int,
    samples: int,
    seed: int,
    optimizer: str = "fused",
    accelerator: bool = False,
) -> Dict[str, Any]:
    """Per model: ops, syncs and CPU seconds per segment (median over samples), and the most frequent sync ops."""
    trainers = {spec: SampleTrainer(build_model(spec, seed), optimizer, accelerator) for spec in specs}
    generator = torch.Generator().manual_seed(seed)
    vocab_size = min(trainer.model.config.vocab_size for trainer in trainers.values())
    warmup = make_sample(vocab_size, segments, batch_size, length, generator)
    for trainer in trainers.values():
        trainer.train_sample(warmup)
    counted = make_sample(vocab_size, segments, batch_size, length, generator)
    counts = {spec: count(lambda: trainer.train_sample(counted)) for spec, trainer in trainers.items()}
    seconds: Dict[str, List[float]] = {spec: [] for spec in specs}
    for index in range(samples):
        sample = make_sample(vocab_size, segments, batch_size, length, generator)
        order = specs if index % 2 == 0 else specs[::-1]  # neither model always runs first
        for spec in order:
            start = time.process_time()
            trainers[spec].train_sample(sample)
            seconds[spec].append((time.process_time() - start) / segments)
    return {
        spec: {
            "ops_per_segment": counts[spec].ops / segments,
            "syncs_per_segment": counts[spec].syncs / segments,
            "cpu_s_per_segment": statistics.median(seconds[spec]),
            "sync_ops_per_segment": {name: n / segments for name, n in counts[spec].sync_ops.most_common()},
        }
        for spec in specs
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=DEFAULT_CONFIGS,
        help="configuration files, each optionally followed by :FIELD=VALUE,... overrides; the last is the baseline",
    )
    parser.add_argument("--segments", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=32, help="tokens per segment")
    parser.add_argument("--samples", type=int, default=5, help="timed samples per model")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (set, not inherited)")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="fused", help="AdamW's implementation")
    parser.add_argument(
        "--accelerator-path",
        action="store_true",
        help="run Memoria's accelerator path on the CPU (what a GPU runs: counts its launches and syncs)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = measure(
        args.configs,
        args.segments,
        args.batch_size,
        args.length,
        args.samples,
        args.seed,
        args.optimizer,
        args.accelerator_path,
    )
    baseline = results[args.configs[-1]]
    print(
        f"training step per segment: {args.segments} segments, batch {args.batch_size}, {args.length} tokens, "
        f"backward + AdamW ({args.optimizer}) each segment, memory reset per sample; {args.threads} thread(s), "
        f"interleaved; Memoria's {'accelerator' if args.accelerator_path else 'device-chosen'} path"
    )
    width = max(len(Path(spec).name) for spec in results)
    for spec, row in results.items():
        ratio_ops = row["ops_per_segment"] / baseline["ops_per_segment"]
        ratio_time = row["cpu_s_per_segment"] / baseline["cpu_s_per_segment"]
        extra_syncs = row["syncs_per_segment"] - baseline["syncs_per_segment"]
        print(
            f"{Path(spec).name:{width}s}  ops {row['ops_per_segment']:7.1f} ({ratio_ops:.2f}x)  "
            f"syncs {row['syncs_per_segment']:6.1f} ({extra_syncs:+.1f})  "
            f"cpu {row['cpu_s_per_segment'] * 1e3:7.2f} ms ({ratio_time:.2f}x)"
        )
        if row["sync_ops_per_segment"]:
            print(" " * width + "  syncs by op: " + json.dumps(row["sync_ops_per_segment"]))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
