"""The contract every registered experiment model keeps, checked once per model on its small configuration.

Registered with the Auto classes; one call runs the next segment; ``reset_memory`` forgets every row or chosen
rows (indices or a bool mask) and leaves the others unchanged; ``save_pretrained`` / ``from_pretrained`` (in this
process and in a fresh one) give the same logits; ``memory_state`` round-trips; an earlier segment changes a later
one's logits exactly when the model carries memory; bad input is refused with an error naming it, leaving the
memory as it was. Causal LMs also take ``labels`` and ``generate``.
"""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

from experiment.models.registration import REGISTERED

CONFIGS = Path(__file__).resolve().parents[2] / "experiment" / "configs"
SMALL_CONFIGS = {  # model_type: (configuration file, model_type to build it as)
    "gpt2_segment": "gpt2-sort-small.json",
    "gpt2_with_memoria": "memoria-gpt2-sort-small.json",
    "memoria_transfo_xl": "transfo-xl-sort-small.json",
    "memoria_compressive_transformer": "compressive-sort-small.json",
    "infinity_former": "infinity-former-sort-small.json",
    "memoria_rmt": "rmt-sort-small.json",
    "bert_segment": "bert-genre-small.json",
    "memoria_bert": "memoria-bert-genre-small.json",
    "roberta_segment": "bert-genre-small.json",  # RoBERTa on the small BERT's sizes: there is no small RoBERTa file
    "memoria_roberta": "memoria-bert-genre-small.json",
}
MODEL_TYPES = sorted(SMALL_CONFIGS)
CAUSAL_TYPES = [model_type for model_type in MODEL_TYPES if REGISTERED[model_type].causal_lm_class is not None]
MEMORIA_TYPES = ["gpt2_with_memoria", "memoria_bert", "memoria_roberta"]
TAKES_NO_PADDING = {"gpt2_with_memoria", "infinity_former"}
BATCH, LENGTH = 3, 8


pytestmark = pytest.mark.usefixtures("one_thread")


def small_config(model_type: str, **overrides):
    fields = json.loads((CONFIGS / SMALL_CONFIGS[model_type]).read_text())
    fields.pop("model_type")
    return AutoConfig.for_model(model_type, **{**fields, **overrides})


def small_model(model_type: str, **overrides):
    """The model a task trains (causal LM or classifier), with seeded weights, in eval mode."""
    torch.manual_seed(0)
    return REGISTERED[model_type].head_class(small_config(model_type, **overrides)).eval()


def twins(model_type: str):
    """Two copies of the small model, with the same weights."""
    model = small_model(model_type)
    return model, copy.deepcopy(model)


def segments(model, num_segments: int, batch_size: int = BATCH, seed: int = 1) -> list:
    generator = torch.Generator().manual_seed(seed)
    high = min(model.config.vocab_size, 50)
    return [torch.randint(3, high, (batch_size, LENGTH), generator=generator) for _ in range(num_segments)]


def run(model, stream: list, seed: int = 0) -> list:
    """Each segment's logits, read in order with seeded randomness (Memoria's ties, sticky sampling)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return [model(input_ids=segment).logits for segment in stream]


def auto_head(model_type: str):
    """The Auto class that builds the model a task trains."""
    return AutoModelForCausalLM if REGISTERED[model_type].causal_lm_class else AutoModelForSequenceClassification


def carries_memory(model) -> bool:
    return type(model).memory_attributes != ()


def test_every_registered_model_is_checked_here():
    assert sorted(REGISTERED) == MODEL_TYPES


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_auto_classes_build_the_registered_classes(model_type):
    registered = REGISTERED[model_type]
    config = small_config(model_type)
    assert type(config) is registered.config_class
    assert type(AutoModel.from_config(config)) is registered.base_model_class
    model = auto_head(model_type).from_config(config)
    assert type(model) is registered.head_class
    logits = model.eval()(input_ids=segments(model, 1)[0]).logits
    expected = (BATCH, LENGTH, config.vocab_size) if registered.causal_lm_class else (BATCH, config.num_labels)
    assert logits.shape == expected


@pytest.mark.parametrize("name", sorted(path.name for path in CONFIGS.glob("*.json")))
def test_every_configuration_file_loads_as_written(name):
    fields = json.loads((CONFIGS / name).read_text())
    config = AutoConfig.from_pretrained(CONFIGS / name)
    assert type(config) is REGISTERED[fields["model_type"]].config_class
    assert {key: getattr(config, key) for key in fields} == fields


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_reset_memory_gives_a_fresh_models_logits(model_type):
    model, fresh = twins(model_type)
    stream = segments(model, 4)
    run(model, stream[:3])
    model.reset_memory()
    torch.testing.assert_close(run(model, stream[3:]), run(fresh, stream[3:]), rtol=0, atol=0)


@pytest.mark.parametrize("rows", [[1], torch.tensor([1]), torch.tensor([False, True, False])], ids=str)
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_resetting_chosen_rows_refreshes_them_and_leaves_the_others(model_type, rows):
    model, untouched = twins(model_type)
    stream = segments(model, 4)
    run(model, stream[:3])
    run(untouched, stream[:3])
    model.reset_memory(rows)
    after_reset = run(model, stream[3:])[0]
    kept = run(untouched, stream[3:])[0]
    fresh_row = run(small_model(model_type), [stream[3][1:2]])[0]
    torch.testing.assert_close(after_reset[[0, 2]], kept[[0, 2]], rtol=0, atol=1e-6)
    torch.testing.assert_close(after_reset[1:2], fresh_row, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_an_earlier_segment_changes_later_logits_exactly_when_the_model_carries_memory(model_type):
    model = small_model(model_type)
    stream = segments(model, 3)
    other_start = segments(model, 1, seed=9) + stream[1:]
    later = run(model, stream)[-1]
    model.reset_memory()
    later_after_other_start = run(model, other_start)[-1]
    if carries_memory(model):
        assert (later - later_after_other_start).abs().max() > 1e-6
    else:
        assert torch.equal(later, later_after_other_start)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_save_and_from_pretrained_give_the_same_config_and_logits(model_type, tmp_path):
    model = small_model(model_type)
    model.save_pretrained(tmp_path)
    registered = REGISTERED[model_type]
    loaded = auto_head(model_type).from_pretrained(tmp_path).eval()
    assert type(loaded) is registered.head_class
    assert loaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {"_name_or_path": ""}
    assert type(AutoModel.from_pretrained(tmp_path)) is registered.base_model_class
    stream = segments(model, 3)
    torch.testing.assert_close(run(loaded, stream), run(model, stream), rtol=1e-5, atol=1e-6)  # to float rounding


def test_a_fresh_process_that_imports_experiment_models_loads_every_saved_model(tmp_path):
    expected = {}
    for model_type in MODEL_TYPES:
        model = small_model(model_type)
        model.save_pretrained(tmp_path / model_type)
        segment = segments(model, 1)[0]
        expected[model_type] = (REGISTERED[model_type].head_class.__name__, segment, run(model, [segment])[0])
    torch.save(expected, tmp_path / "expected.pt")
    script = f"""
import sys, torch
import experiment.models
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
for model_type, (class_name, segment, logits) in expected.items():
    auto = AutoModelForCausalLM if class_name.endswith(("LMHeadModel", "ForCausalLM")) else AutoModelForSequenceClassification
    model = auto.from_pretrained({str(tmp_path)!r} + "/" + model_type).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        got = model(input_ids=segment).logits
    assert type(model).__name__ == class_name and torch.allclose(got, logits, rtol=1e-5, atol=1e-6), model_type
print("loaded", len(expected))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=CONFIGS.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"loaded {len(MODEL_TYPES)}" in done.stdout


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_memory_state_round_trips_into_the_same_and_another_model(model_type):
    model, other = twins(model_type)
    stream = segments(model, 3)
    run(model, stream[:2])
    state = model.memory_state()
    assert (state == {}) == (not carries_memory(model))
    continued = run(model, stream[2:])
    model.load_memory_state(state)
    torch.testing.assert_close(run(model, stream[2:]), continued, rtol=0, atol=0)
    other.load_memory_state(state)
    torch.testing.assert_close(run(other, stream[2:]), continued, rtol=0, atol=0)


def bad_calls(model, stream: list) -> list:
    """(call, what the error names) pairs of calls the model must refuse."""
    config = model.config
    x = stream[0]
    calls = [
        (lambda: model(input_ids=x.float()), "input_ids"),
        (lambda: model(input_ids=x[0]), r"input_ids must be an integer tensor shaped \[BatchSize, SegmentLength\]"),
        (lambda: model(input_ids=torch.full_like(x, config.vocab_size)), "vocab_size"),
        (lambda: model(input_ids=torch.full_like(x, -1)), "vocab_size"),
        (lambda: model(input_ids=x[:, :0]), "SegmentLength"),
        (lambda: model(input_ids=x.new_zeros(BATCH, config.max_position_embeddings + 1)), "SegmentLength"),
        (lambda: model(input_ids=x, attention_mask=torch.ones(BATCH, LENGTH + 1)), "attention_mask must be shaped"),
        (lambda: model(input_ids=x, attention_mask=torch.full_like(x, 2)), "attention_mask must hold only 0 and 1"),
        (lambda: model.reset_memory(torch.tensor([0.5])), "rows must be integer indices"),
        (lambda: model.reset_memory(torch.ones(2, 2, dtype=torch.bool)), "rows must be integer indices"),
    ]
    if carries_memory(model):  # a memory of BatchSize rows: rows and segments are checked against it
        calls.append((lambda: model(input_ids=x[:2]), "reset_memory"))
        calls.append((lambda: model.reset_memory([BATCH]), r"rows must be indices in \[0, 3\)"))
        calls.append((lambda: model.reset_memory(torch.tensor([True, False])), r"shaped \[BatchSize\] = \[3\]"))
    if config.model_type in TAKES_NO_PADDING:
        calls.append((lambda: model(input_ids=x, attention_mask=torch.ones_like(x).tril()), "padding"))
    bad_labels = x[:, 1:] if config.model_type in CAUSAL_TYPES else x  # class ids are shaped [BatchSize]
    calls.append((lambda: model(input_ids=x, labels=bad_labels), "labels must be"))
    return calls


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_bad_input_is_refused_naming_it_and_leaves_the_memory_as_it_was(model_type):
    model, untouched = twins(model_type)
    stream = segments(model, 2)
    expected = run(untouched, stream)[1]
    run(model, stream[:1])
    for call, message in bad_calls(model, stream):
        with pytest.raises(ValueError, match=message):
            call()
    torch.testing.assert_close(run(model, stream[1:])[0], expected, rtol=0, atol=0)


@pytest.mark.parametrize("model_type", CAUSAL_TYPES)
def test_labels_give_the_shifted_cross_entropy_plus_the_aux_loss(model_type):
    model, unlabelled = twins(model_type)
    for x in segments(model, 3):
        labels = x.clone()
        labels[0, 3] = -100
        torch.manual_seed(0)
        with torch.no_grad():
            output = model(input_ids=x, labels=labels)
            plain = unlabelled(input_ids=x)
        torch.testing.assert_close(output.logits, plain.logits, rtol=0, atol=0)
        vocab = output.logits.size(-1)
        expected = F.cross_entropy(output.logits[:, :-1].reshape(-1, vocab), labels[:, 1:].reshape(-1))
        aux_loss = getattr(output, "aux_loss", None)
        torch.testing.assert_close(output.loss, expected if aux_loss is None else expected + aux_loss)


@pytest.mark.parametrize("model_type", CAUSAL_TYPES)
def test_greedy_generation_continues_from_the_memory_and_leaves_it_as_it_was(model_type):
    model, untouched = twins(model_type)
    stream = segments(model, 3)
    prompt = stream[2][:, :4]
    run(model, stream[:1])
    run(untouched, stream[:1])

    torch.manual_seed(1)
    generated = model.generate(prompt, max_new_tokens=3, do_sample=False)
    torch.manual_seed(1)
    again = model.generate(prompt, max_new_tokens=3, do_sample=False)
    assert generated.shape == (BATCH, 7) and torch.equal(generated, again)
    assert torch.equal(generated[:, :4], prompt)
    # the first new token is the argmax after the prompt read on top of the memory
    first = copy.deepcopy(untouched)
    torch.manual_seed(1)
    with torch.no_grad():
        assert torch.equal(generated[:, 4], first(input_ids=prompt).logits[:, -1].argmax(-1))
    # generating changed nothing a later segment reads
    torch.testing.assert_close(run(model, stream[1:]), run(untouched, stream[1:]), rtol=0, atol=0)


@pytest.mark.parametrize("model_type", MEMORIA_TYPES)
def test_erasing_memoria_every_segment_is_the_same_model_without_memory(model_type):
    ablation, full = small_model(model_type, memoria_reset_period=1), small_model(model_type)
    assert ablation.num_parameters() == full.num_parameters()
    stream = segments(full, 3)
    erased = run(ablation, stream)
    for segment, logits in zip(stream, erased):
        torch.testing.assert_close(logits, run(small_model(model_type), [segment])[0])
    assert not torch.allclose(erased[-1], run(full, stream)[-1])


@pytest.mark.parametrize("model_type", MEMORIA_TYPES)
def test_memoria_reset_period_resets_the_memory_on_its_own(model_type):
    periodic = small_model(model_type, memoria_reset_period=2)
    stream = segments(periodic, 3)
    third = run(periodic, stream)[2]
    torch.testing.assert_close(third, run(small_model(model_type), stream[2:])[0])


@pytest.mark.parametrize(
    "model_type, field, value, message",
    [
        ("gpt2_with_memoria", "memoria_lifespan_delta", "halved", "memoria_lifespan_delta"),
        ("gpt2_with_memoria", "memoria_reset_period", 0, "memoria_reset_period"),
        ("gpt2_with_memoria", "memoria_mode", "fast", "memoria_mode"),
        ("memoria_bert", "memory_layer_index", 2, "memory_layer_index"),
        ("memoria_roberta", "memoria_stm_capacity", 0, "memoria_stm_capacity"),
        ("memoria_transfo_xl", "n_head", 3, r"n_embd \(128\) must be divisible by n_head \(3\)"),
        ("memoria_transfo_xl", "mem_len", -1, "mem_len must be at least 0"),
        (
            "memoria_compressive_transformer",
            "compression_rate",
            64,
            r"mem_len \(32\) must be at least compression_rate",
        ),
        ("memoria_compressive_transformer", "cmem_len", -1, "cmem_len must be at least 0"),
        ("infinity_former", "ltm_tau", 1.0, "ltm_tau"),
        ("infinity_former", "ltm_num_basis", 15, "ltm_num_basis"),
        ("infinity_former", "ltm_basis_widths", [0.0, 0.1], "ltm_basis_widths"),
        ("infinity_former", "ltm_ridge_penalty", 0.0, "ltm_ridge_penalty"),
        ("memoria_rmt", "xl_mem_len", 129, "xl_mem_len"),
        ("memoria_rmt", "head_dim", 0, "head_dim must be None or at least 1, got 0"),
        ("memoria_rmt", "bptt_segments", -1, "bptt_segments must be at least 0, got -1"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_field(model_type, field, value, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        small_config(model_type, **{field: value})


def test_the_small_sorting_models_have_parameter_counts_within_ten_percent():
    counts = {}
    for path in sorted(CONFIGS.glob("*-sort-small.json")):
        counts[path.stem] = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path)).num_parameters()
    assert len(counts) == len(CAUSAL_TYPES)
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts
