"""Step time of Memoria GPT-2 built on ``memoria.nn`` against the experiment's hand-wired Memoria GPT-2.

Both models hold the same weights and give the same logits bit for bit (``tests/experiment/
test_nn_rebuild_parity.py``); this measures what the ``memoria.nn`` parts cost or save per training step (forward,
backward, optimizer), timed interleaved in one process so that both see the same machine load::

    python -m benchmarks.nn_step --config experiment/configs/memoria-gpt2-lm-small.json --steps 30
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from benchmarks.measure import synchronize
from memoria.nn import MemoriaMemory, MemoryReader


def load_reader(reader: MemoryReader, norms: Sequence[nn.LayerNorm], attentions: Sequence[nn.Module], names) -> None:
    """Copy a block's two LayerNorms and memory attention(s) into ``reader``; ``names`` are the attention's query,
    key-value and output projections, in that order."""
    state = {}
    for name, norm in zip(("ln_working", "ln_reminded"), norms):
        state.update({f"{name}.{key}": value for key, value in norm.state_dict().items()})
    for i, attention in enumerate(attentions):
        for ours, theirs in zip(("q_proj", "kv_proj", "out_proj"), names):
            weights = getattr(attention, theirs).state_dict()
            state.update({f"attention.{i}.{ours}.{key}": value for key, value in weights.items()})
    reader.load_state_dict(state)


class GPT2OnMemoriaNN(nn.Module):
    """The experiment's Memoria GPT-2 (``GPT2WithMemoriaLMHeadModel``) run on ``memoria.nn``: one
    :class:`MemoriaMemory` and one :class:`MemoryReader` per block, holding the model's own memory weights; the
    embeddings, self-attentions, MLPs and head are the model's modules."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        config, body = model.config, model.transformer
        self.model = model
        self.memory = MemoriaMemory(
            config.n_embd,
            num_working_memories=config.memoria_num_memories,
            stm_capacity=config.memoria_stm_capacity,
            num_reminded_stm=config.memoria_num_reminded_stm,
            num_reminded_ltm=config.memoria_num_reminded_ltm,
            ltm_search_depth=config.memoria_ltm_search_depth,
            initial_lifespan=config.memoria_initial_lifespan,
            lifespan_alpha=config.memoria_lifespan_extend_scale,
            lifespan_rule=config.memoria_lifespan_delta,
            mode=config.memoria_mode,
            reset_period=config.memoria_reset_period,
            abstractor_feedforward_size=config.n_inner or 4 * config.n_embd,
        ).to(body.wte.weight.device)
        if body.abstractor is not None:
            self.memory.abstractor.load_state_dict(body.abstractor.state_dict())
        self.readers = nn.ModuleList()
        for block in body.h:
            reader = MemoryReader(
                config.n_embd,
                config.n_head,
                shared_attention=config.memoria_shared_memory_attention,
                attention_dropout=config.attn_pdrop,
                dropout=config.resid_pdrop,
                layer_norm_eps=config.layer_norm_epsilon,
            ).to(body.wte.weight.device)
            load_reader(
                reader, (block.ln_working, block.ln_reminded), block.memory_attn, ("q_proj", "kv_proj", "c_proj")
            )
            self.readers.append(reader)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits [BatchSize, SegmentLength, VocabSize] of the next segment ``input_ids`` [BatchSize,
        SegmentLength]."""
        body = self.model.transformer
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        hidden = body.drop(body.wte(input_ids) + body.wpe(positions))
        memories = self.memory.read(hidden)
        weights = []
        for block, reader in zip(body.h, self.readers):
            hidden = hidden + block.attn(block.ln_1(hidden))
            hidden, reminded_weights = reader(hidden, memories)
            hidden = hidden + block.mlp(block.ln_2(hidden))
            weights.append(reminded_weights)
        hidden = body.ln_f(hidden)
        self.memory.write(weights, hidden)
        return self.model.lm_head(hidden)


def hand_wired_and_rebuilt(config_path: Path, device: torch.device):
    """The experiment's model from ``config_path`` and a separate copy of it run on ``memoria.nn``."""
    from experiment.models.gpt2_with_memoria import GPT2WithMemoriaConfig, GPT2WithMemoriaLMHeadModel

    fields = json.loads(config_path.read_text())
    fields.pop("model_type", None)
    config = GPT2WithMemoriaConfig(**fields)
    torch.manual_seed(0)
    hand_wired = GPT2WithMemoriaLMHeadModel(config).to(device)
    copy = GPT2WithMemoriaLMHeadModel(config).to(device)
    copy.load_state_dict(hand_wired.state_dict())
    return hand_wired, GPT2OnMemoriaNN(copy)


def measure(
    config_path: Path, batch_size: int, length: Optional[int], warmup: int, steps: int, device: torch.device
) -> Dict[str, float]:
    """Median seconds per training step of each model, timed alternately step by step (each goes first every other
    step)."""
    hand_wired, rebuilt = hand_wired_and_rebuilt(config_path, device)
    length = length or hand_wired.config.n_positions
    vocab_size = hand_wired.config.vocab_size
    models = {"hand_wired": (hand_wired, lambda ids: hand_wired(ids).logits), "memoria_nn": (rebuilt, rebuilt)}
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, (model, _) in models.items()}
    times: Dict[str, List[float]] = {name: [] for name in models}
    for step in range(warmup + steps):
        input_ids = torch.randint(0, vocab_size, (batch_size, length), device=device)
        order = list(models) if step % 2 == 0 else list(reversed(models))  # neither always runs first
        for name in order:
            logits_of = models[name][1]
            synchronize(device)
            start = time.perf_counter()
            logits = logits_of(input_ids)
            loss = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), input_ids[:, 1:].flatten())
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            synchronize(device)
            if step >= warmup:
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        **{f"{name}_s": value for name, value in medians.items()},
        "ratio": medians["memoria_nn"] / medians["hand_wired"],
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("experiment/configs/memoria-gpt2-lm-small.json"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=None, help="segment length; default n_positions")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    result = {
        "config": str(args.config),
        "batch_size": args.batch_size,
        "device": args.device,
        "torch": torch.__version__,
        **measure(args.config, args.batch_size, args.length, args.warmup, args.steps, torch.device(args.device)),
    }
    print(json.dumps(result, indent=2))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
