"""What only the encoders do: padding never changes a prediction, Memoria BERT's lifespan rule, local BERT and
RoBERTa checkpoints load into them, token embeddings resize. The contract every model keeps is tested in
test_model_contract.py."""

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

import experiment.models  # noqa: F401  (registers the models)
from experiment.models.bert_segment import BertSegmentForSequenceClassification
from experiment.models.memoria_bert import (
    MemoriaBertForSequenceClassification,
    MemoriaRobertaForSequenceClassification,
    MemoriaRobertaModel,
)

# initializer_range 0.2: large enough that memory visibly changes a random model's logits
ENCODER = dict(
    vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
    max_position_embeddings=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.2,
    num_labels=3,
)  # fmt: skip
MEMORIA = dict(
    memory_layer_index=2, memoria_num_memories=4, memoria_stm_capacity=8, memoria_num_reminded_stm=4,
    memoria_num_reminded_ltm=4, memoria_ltm_search_depth=2, memoria_initial_lifespan=3,
)  # fmt: skip
MEMORIA_TYPES = ["memoria_bert", "memoria_roberta"]
PLAIN_TYPES = ["bert_segment", "roberta_segment"]


def make_model(model_type: str, **overrides):
    torch.manual_seed(0)
    fields = {**ENCODER, **(MEMORIA if model_type in MEMORIA_TYPES else {}), **overrides}
    model = AutoModelForSequenceClassification.from_config(AutoConfig.for_model(model_type, **fields))
    return model.eval()


def tokens(rows: int = 2, length: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, ENCODER["vocab_size"], (rows, length), generator=torch.Generator().manual_seed(seed))


def run(model, segments, masks=None):
    model.reset_memory()
    masks = masks or [None] * len(segments)
    with torch.no_grad():
        return [model(input_ids=segment, attention_mask=mask).logits for segment, mask in zip(segments, masks)]


@pytest.mark.parametrize("model_type", MEMORIA_TYPES + PLAIN_TYPES)
def test_padding_never_changes_a_prediction(model_type):
    model = make_model(model_type)
    first, last = tokens(rows=1, length=10, seed=1), tokens(rows=1, length=6, seed=2)
    pad = model.config.pad_token_id
    plain = run(model, [first, last])[-1]
    # the same document in a batch with a longer one: its last segment padded, then a segment of padding only
    longer = tokens(rows=1, length=10, seed=3)
    padded_last = torch.cat([last, torch.full((1, 4), pad)], dim=1)
    batch = [
        torch.cat([first, longer]),
        torch.cat([padded_last, longer]),
        torch.cat([torch.full((1, 10), pad), longer]),
    ]
    masks = [
        torch.ones(2, 10, dtype=torch.long),
        torch.tensor([[1] * 6 + [0] * 4, [1] * 10]),
        torch.tensor([[0] * 10, [1] * 10]),
    ]
    batched = run(model, batch, masks)
    assert torch.allclose(batched[1][0], plain[0], atol=1e-5)
    assert torch.isfinite(batched[2]).all()


def test_lifespan_delta_is_alpha_times_width_times_mean_attention():
    model = make_model("memoria_bert")
    model.reset_memory()
    with torch.no_grad():
        model(input_ids=tokens(seed=1))
        output = model(input_ids=tokens(seed=2))
    real = output.reminded_indices >= 0
    assert real.any()
    assert (output.lifespan_delta[~real] == 0).all()
    # attention weights sum to at most 1 over the reminded engrams: the deltas of a row sum to at most alpha * R
    width = output.reminded_indices.size(1)
    totals = output.lifespan_delta.sum(dim=1)
    assert torch.allclose(totals, torch.full_like(totals, 8.0 * width), rtol=1e-4)


def test_from_pretrained_loads_a_local_bert_into_the_encoder(tmp_path):
    torch.manual_seed(3)
    # 12 layers: the paper's memory_layer_index (9) applies as is
    fields = {**ENCODER, "num_hidden_layers": 12}
    bert = BertModel(BertConfig(**{k: v for k, v in fields.items() if k != "num_labels"}))
    bert.save_pretrained(tmp_path / "bert")
    model, info = MemoriaBertForSequenceClassification.from_pretrained(
        tmp_path / "bert", num_labels=3, output_loading_info=True
    )
    assert model.config.memory_layer_index == 9 and len(model.bert.memory_reads) == 3
    loaded = dict(model.bert.named_parameters())
    for name, value in bert.named_parameters():
        assert torch.equal(loaded[name], value), name
    assert info["missing_keys"] and all(
        key.startswith(("bert.memory.abstractor", "bert.memory_reads", "classifier")) for key in info["missing_keys"]
    )
    assert run(model.eval(), [tokens()])[0].shape == (2, 3)
    plain = BertSegmentForSequenceClassification.from_pretrained(tmp_path / "bert", num_labels=3)
    assert torch.equal(plain.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)


def test_from_pretrained_loads_a_local_roberta_into_the_encoder(tmp_path):
    torch.manual_seed(4)
    fields = {**ENCODER, "pad_token_id": 1}
    roberta = RobertaForSequenceClassification(RobertaConfig(**fields))
    roberta.save_pretrained(tmp_path / "roberta")
    # a smaller encoder than the paper's: the Memoria fields come with the configuration
    config = AutoConfig.for_model("memoria_roberta", **fields, **MEMORIA)
    model = MemoriaRobertaForSequenceClassification.from_pretrained(tmp_path / "roberta", config=config)
    loaded = dict(model.named_parameters())
    for name, value in roberta.named_parameters():
        assert torch.equal(loaded[name], value), name
    assert isinstance(model.roberta, MemoriaRobertaModel)


@pytest.mark.parametrize("model_type", MEMORIA_TYPES)
def test_token_embeddings_can_be_resized(model_type):
    model = make_model(model_type)
    model.resize_token_embeddings(60)
    assert model.get_input_embeddings().weight.shape == (60, ENCODER["hidden_size"])
    assert run(model, [tokens()])[0].shape == (2, 3)


def test_from_pretrained_initialises_the_abstractor_queries(tmp_path):
    torch.manual_seed(5)
    fields = {**ENCODER, "num_hidden_layers": 12}
    BertModel(BertConfig(**{k: v for k, v in fields.items() if k != "num_labels"})).save_pretrained(tmp_path / "b")
    model = MemoriaBertForSequenceClassification.from_pretrained(tmp_path / "b", num_labels=3)
    queries = model.bert.abstractor.query_embeddings
    assert torch.isfinite(queries).all() and 0.1 < queries.std().item() < 0.3  # normal(0, initializer_range 0.2)
