"""memoria.nn reproduces the experiment's Memoria GPT-2 and Memoria BERT bit for bit.

Each test rebuilds an experiment model's segment loop from ``memoria.nn`` parts (one ``MemoriaMemory``, one
``MemoryReader`` per block holding the model's own memory-attention weights), reusing the model's other modules,
and compares logits segment by segment: the contract that lets the experiment models move onto ``memoria.nn``.
The GPT-2 rebuild lives in ``benchmarks/nn_step.py``, which times it against the hand-wired model.
"""

import pytest
import torch
from torch import nn

import experiment.models  # noqa: F401  (registers the models)
from benchmarks.nn_step import GPT2OnMemoriaNN, load_reader
from experiment.models.gpt2_with_memoria import GPT2WithMemoriaConfig, GPT2WithMemoriaLMHeadModel
from experiment.models.memoria_bert import MemoriaBertConfig, MemoriaBertForSequenceClassification
from experiment.models.memoria_bert.modeling_memoria_bert import check_segment
from memoria.nn import MemoriaMemory, MemoryReader

GPT2 = dict(
    n_layer=2,
    n_embd=32,
    n_head=2,
    n_inner=64,
    n_positions=16,
    vocab_size=11,
    bos_token_id=None,
    eos_token_id=None,
    use_cache=False,
)
MEMORIA = dict(
    memoria_num_memories=4,
    memoria_stm_capacity=8,
    memoria_num_reminded_stm=4,
    memoria_num_reminded_ltm=4,
    memoria_ltm_search_depth=2,
    memoria_initial_lifespan=3,
)


def gpt2_segments(num_segments=7, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, GPT2["vocab_size"], (3, 8), generator=generator) for _ in range(num_segments)]


def run_with_seeds(model, segments, reset_rows_at=None):
    outputs = []
    for step, segment in enumerate(segments):
        if step == reset_rows_at:
            (
                model.memory.reset_memory(torch.tensor([1]))
                if hasattr(model, "memory")
                else model.reset_memory(torch.tensor([1]))
            )
        torch.manual_seed(100 + step)  # dropout and reference-mode tie-break noise draw from the global generator
        outputs.append(model(segment))
    return outputs


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"memoria_mode": "paper", "memoria_shared_memory_attention": False},
        {"memoria_lifespan_delta": "renormalised", "memoria_reset_period": 4},
        {"memoria_num_memories": None},
        {"embd_pdrop": 0.1, "attn_pdrop": 0.1, "resid_pdrop": 0.1, "train": True},
    ],
)
def test_memoria_gpt2_logits_are_reproduced_bit_for_bit(overrides):
    overrides = dict(overrides)
    train = overrides.pop("train", False)
    fields = {"embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0, **overrides}
    torch.manual_seed(0)
    model = GPT2WithMemoriaLMHeadModel(GPT2WithMemoriaConfig(**{**GPT2, **MEMORIA, **fields})).train(train)
    rebuilt = GPT2OnMemoriaNN(model).train(train)
    segments = gpt2_segments()
    with torch.no_grad():
        expected = [out.logits for out in run_with_seeds(model, segments, reset_rows_at=3)]
        got = run_with_seeds(rebuilt, segments, reset_rows_at=3)
    for step, (a, b) in enumerate(zip(expected, got)):
        assert torch.equal(a, b), f"segment {step}"


ENCODER = dict(
    vocab_size=50,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=24,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    initializer_range=0.2,
    num_labels=3,
    memory_layer_index=2,
    memoria_num_memories=4,
    memoria_stm_capacity=8,
    memoria_num_reminded_stm=4,
    memoria_num_reminded_ltm=4,
    memoria_ltm_search_depth=2,
    memoria_initial_lifespan=3,
)


class BertOnMemoriaNN(nn.Module):
    """Memoria BERT's forward on memoria.nn (working memory from the current segment), with its weights."""

    def __init__(self, model: MemoriaBertForSequenceClassification) -> None:
        super().__init__()
        config, body = model.config, model.bert
        self.model = model
        self.memory = MemoriaMemory(
            config.hidden_size,
            num_working_memories=config.memoria_num_memories,
            stm_capacity=config.memoria_stm_capacity,
            num_reminded_stm=config.memoria_num_reminded_stm,
            num_reminded_ltm=config.memoria_num_reminded_ltm,
            ltm_search_depth=config.memoria_ltm_search_depth,
            initial_lifespan=config.memoria_initial_lifespan,
            lifespan_alpha=config.memoria_lifespan_extend_scale,
            working_memory="current",
            mode=config.memoria_mode,
            reset_period=config.memoria_reset_period,
            abstractor_feedforward_size=config.intermediate_size,
        )
        self.memory.abstractor.load_state_dict(body.abstractor.state_dict())
        self.readers = nn.ModuleList()
        for read in body.memory_reads:
            reader = MemoryReader(
                config.hidden_size,
                config.num_attention_heads,
                attention_dropout=config.attention_probs_dropout_prob,
                dropout=config.attention_probs_dropout_prob,
                layer_norm_eps=config.layer_norm_eps,
            )
            load_reader(reader, (read.ln_working, read.ln_reminded), [read.attention], ("query", "key_value", "output"))
            self.readers.append(reader)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        body, split = self.model.bert, self.model.config.memory_layer_index
        keep = check_segment(input_ids, attention_mask, self.model.config)  # [B, L]
        hidden = body.embeddings(input_ids=input_ids)
        additive = (~keep)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min
        for layer in body.encoder.layer[:split]:
            hidden = layer(hidden, additive)
        memories = self.memory.read(hidden, keep)
        weights = []
        for layer, reader in zip(body.encoder.layer[split:], self.readers):
            attended, reminded_weights = reader(layer.attention(hidden, additive)[0], memories)
            hidden = layer.feed_forward_chunk(attended)
            weights.append(reminded_weights)
        self.memory.write(weights, mask=keep)
        return self.model.classifier(self.model.dropout(body.pooler(hidden)))


@pytest.mark.parametrize("mode", ["reference", "paper"])
def test_memoria_bert_logits_are_reproduced_bit_for_bit(mode):
    torch.manual_seed(0)
    model = MemoriaBertForSequenceClassification(MemoriaBertConfig(**ENCODER, memoria_mode=mode)).eval()
    rebuilt = BertOnMemoriaNN(model).eval()
    generator = torch.Generator().manual_seed(1)
    segments = [torch.randint(3, 50, (2, 10), generator=generator) for _ in range(6)]
    masks = [torch.ones(2, 10, dtype=torch.long) for _ in segments]
    masks[2][1, 6:] = 0  # padding in one row
    masks[4][0, :] = 0  # a row of padding only
    with torch.no_grad():
        expected, got = [], []
        for step, (segment, mask) in enumerate(zip(segments, masks)):
            torch.manual_seed(100 + step)
            expected.append(model(input_ids=segment, attention_mask=mask).logits)
            torch.manual_seed(100 + step)
            got.append(rebuilt(segment, mask))
            if step == 3:
                model.reset_memory(torch.tensor([0]))
                rebuilt.memory.reset_memory(torch.tensor([0]))
    for step, (a, b) in enumerate(zip(expected, got)):
        assert torch.equal(a, b), f"segment {step}"
