"""The plain-Transformer baseline is registered with the Auto classes and meets the model contract."""

import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

from experiment.models.gpt2_segment import GPT2SegmentConfig, GPT2SegmentLMHeadModel, GPT2SegmentModel


def small_config() -> GPT2SegmentConfig:
    fields = json.loads(Path("experiment/configs/gpt2-sort-small.json").read_text())
    fields.pop("model_type")
    return AutoConfig.for_model("gpt2_segment", **fields)


def test_auto_classes_build_the_segment_baseline():
    config = small_config()
    assert isinstance(config, GPT2SegmentConfig)
    assert isinstance(AutoModelForCausalLM.from_config(config), GPT2SegmentLMHeadModel)
    assert isinstance(AutoModel.from_config(config), GPT2SegmentModel)


def test_the_baseline_carries_nothing_between_segments():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(small_config()).eval()
    first, second = torch.randint(0, 21, (2, 3, 16))
    with torch.no_grad():
        model(input_ids=first)
        later = model(input_ids=second).logits
        model(input_ids=(first + 1) % 21)
        later_after_other_first = model(input_ids=second).logits
        model.reset_memory([1])
        after_reset = model(input_ids=second).logits
    assert later.shape == (3, 16, 21)
    torch.testing.assert_close(later, later_after_other_first, rtol=0, atol=0)
    torch.testing.assert_close(later, after_reset, rtol=0, atol=0)


def test_save_and_load_through_auto_classes(tmp_path):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(small_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, GPT2SegmentLMHeadModel)
    x = torch.randint(0, 21, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=x).logits, model(input_ids=x).logits, rtol=0, atol=0)


def test_plain_gpt2_checkpoints_load_into_the_baseline(tmp_path):
    torch.manual_seed(0)
    fields = small_config().to_dict()
    fields.pop("model_type")
    gpt2 = GPT2LMHeadModel(GPT2Config(**{k: v for k, v in fields.items() if not k.startswith("_")})).eval()
    gpt2.save_pretrained(tmp_path)
    baseline = GPT2SegmentLMHeadModel.from_pretrained(tmp_path).eval()
    x = torch.randint(0, 21, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(baseline(input_ids=x).logits, gpt2(input_ids=x).logits, rtol=0, atol=0)
