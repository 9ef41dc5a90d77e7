"""What only the plain-Transformer baseline does: it is transformers' GPT-2, so GPT-2 checkpoints load into it.
The contract every model keeps is tested in test_model_contract.py."""

import json
from pathlib import Path

import torch
from transformers import AutoConfig, GPT2Config, GPT2LMHeadModel

from experiment.models.gpt2_segment import GPT2SegmentConfig, GPT2SegmentLMHeadModel


def small_config() -> GPT2SegmentConfig:
    fields = json.loads(Path("experiment/configs/gpt2-sort-small.json").read_text())
    fields.pop("model_type")
    return AutoConfig.for_model("gpt2_segment", **fields)


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
