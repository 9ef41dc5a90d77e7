"""The examples of README "Add Memoria to your model" run, and the first is the proof that the layer remembers:
its model recalls a key from four segments back, and the same model with its memory erased cannot."""

import contextlib
import io
import runpy

import pytest
import torch


@pytest.fixture(scope="module")
def gpt2_example():
    """examples/add_memoria_gpt2.py run once: its globals and what it printed."""
    threads, printed = torch.get_num_threads(), io.StringIO()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(printed):
            example = runpy.run_module("examples.add_memoria_gpt2", run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    return example, printed.getvalue()


@torch.no_grad()
def recall_accuracy(example, erase_memory):
    torch.manual_seed(1234)
    tokens, keys = example["episodes"](512)
    logits = example["model"](tokens, erase_memory)  # [B, LENGTH, KEYS]
    return (logits.argmax(-1) == keys[:, None]).float().mean().item()


def test_add_memoria_recalls_across_segments_and_fails_with_its_memory_erased(one_thread, capsys):
    example = runpy.run_module("examples.add_memoria", run_name="__main__")
    assert "erase_memory=0" in capsys.readouterr().out
    with_memory, erased = recall_accuracy(example, False), recall_accuracy(example, True)
    chance = 1 / example["KEYS"]
    assert with_memory >= 0.9, with_memory
    assert erased <= chance + 0.1, erased  # the answer is in no segment the model sees without memory


def test_add_memoria_gpt2_learns_from_memory(gpt2_example):
    example, printed = gpt2_example
    assert "step 40" in printed
    chance = torch.log(torch.tensor(15.0)).item()  # keys are tokens 1 to 15
    assert example["loss"].item() < chance - 0.5
    layer = example["model"].transformer.h[1].memoria
    assert layer.memory.memoria.store.length > 0  # the memory was written
    assert any(key.endswith("memoria.memory._extra_state") for key in example["model"].state_dict())


def test_readme_section_starts_with_the_example_as_it_is():
    readme = open("README.md").read()
    section = readme[readme.index("## Add Memoria to your model") :]
    example = open("examples/add_memoria.py").read().split('"""', 2)[2].strip("\n")
    first_block = section[section.index("```python\n") + len("```python\n") :]
    assert first_block.startswith(example + "\n```")


def test_hugging_face_save_pretrained_works_without_memory(gpt2_example, tmp_path):
    """safetensors holds tensors only: save_pretrained works within exclude_memory (the memory is a dict)."""
    from safetensors.torch import load_file

    from memoria.nn import exclude_memory

    model = gpt2_example[0]["model"]
    with exclude_memory(model):
        model.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert saved["transformer.h.1.memoria.memory._extra_state"].numel() == 0
    layer = model.transformer.h[1].memoria
    layer.load_state_dict({k.removeprefix("transformer.h.1.memoria."): v for k, v in saved.items() if ".memoria." in k})
    assert layer.memory.memoria.store.length == 0  # a state saved without memory empties it
