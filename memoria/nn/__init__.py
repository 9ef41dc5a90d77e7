"""Memoria as ``torch.nn`` modules: a layer any Transformer can hold, with its memory inside the model.

Two levels:

- :class:`MemoriaLayer` ``(hidden_size, num_heads, *, settings)``: one residual branch,
  ``x = x + memoria_layer(ln(x))``, that reads this segment's memories and writes the segment into memory.
- The parts it is made of, for a model that reads one memory from several blocks (the paper's GPT-2 and
  BERT): :class:`MemoriaMemory` (the Abstractor, Memoria and the previous segment; ``read`` -> the model's
  reads -> ``write``), :class:`MemoryReader` (one block's two reads: working memory, then reminded engrams) and
  :class:`MemoryCrossAttention` (finite for rows with no memory, returns its weights), with
  :func:`lifespan_delta`.

Each forward call is one segment of every batch row: call it on the segments of a batch of long sequences in
order, and :func:`reset_memory` (or ``layer.reset_memory(rows)``) before new samples take the rows.

Training semantics
------------------
- **What gets gradient.** Through the current segment's loss: the cross-attentions and their LayerNorms, and
  the Abstractor, whose working memory the segment reads (with ``working_memory="previous"`` the Abstractor
  runs on the previous segment's hidden states inside this call). Nothing flows back across a segment
  boundary.
- **What is detached.** The engrams Memoria stores (a float32 copy of the working memory) and the reminded
  engrams read back; the previous segment's hidden states, which the layer keeps for the next working memory;
  the attention weights the reminded reads return and the lifespan paid from them.
- **Batch rows are independent.** Each row has its own engrams, and a row's output for a segment depends on its
  own inputs and memory only; :meth:`MemoriaLayer.reset_memory` with ``rows`` leaves the other rows as they
  were. In ``mode="paper"`` (the default) Memoria gives ties between equal Hebbian counts to the oldest engram
  (``tie_break="oldest"``) and draws nothing from torch's generator, so a row's memory also evolves over segments
  as it would in a batch of its own, with one coupling left: ``lifespan_rule="paper"`` multiplies by the batch's
  padded reminded width, which a row that reminds fewer engrams than the widest row feels (``"renormalised"``
  does not). ``tie_break="random"`` (the default of ``mode="reference"`` and of :class:`MemoriaMemory`, as 1.0.0)
  draws the tie-break noise as one ``[BatchSize, S, N]`` tensor, whose shape, and so every row's ties, depends on
  the other rows' engrams.
- **DDP.** Each rank's module keeps the memory of its own rows (its shard of the batch); nothing is
  synchronised, and ``state_dict()`` on one rank holds that rank's memory only. Every parameter takes part in
  every call's graph, also on a first segment, where there is nothing to read yet (a zero-weighted term joins
  the Abstractor's parameters), so ``DistributedDataParallel`` needs no ``find_unused_parameters``.
  ``nn.DataParallel``, whose replicas share one memory object, is not supported.
- **Gradient accumulation.** The memory advances once per forward call, in training or evaluation mode, with
  or without gradient. Accumulating over consecutive segments of the same rows is the ordinary segment loop;
  micro-batches of other samples need their own rows (or a reset) since they would read each other's memory.
  An evaluation pass in the middle of training writes into memory too: save its state (``state_dict()``) or
  reset around it. Activation checkpointing that reruns the layer's forward would write the segment twice.

Saving and moving
-----------------
``model.state_dict()`` holds each memory as ``<prefix>memory._extra_state`` (tensors and plain containers, on
the CPU), so ``torch.save(model.state_dict(), path)`` and ``model.load_state_dict(torch.load(path,
weights_only=True))`` restore the model exactly where it was: the next segment gives the same output.
``with exclude_memory(model):`` saves the parameters only, with an empty tensor in each memory's place (loading
such a state empties the memory): the form safetensors and Hugging Face's ``save_pretrained`` (tensors only) take.
``model.to(device)`` moves the engrams and the previous segment; ``model.to(dtype)`` casts the previous
segment, while engram data stay float32 (Memoria's requirement) and are cast to the hidden states' dtype when
read. ``memory_device="cpu"`` keeps the engrams on the CPU whatever the model's device.
"""

from .attention import Memories, MemoryCrossAttention, MemoryReader
from .layer import MemoriaLayer
from .memory import MemoriaMemory, exclude_memory, lifespan_delta, reset_memory

__all__ = [
    "MemoriaLayer",
    "MemoriaMemory",
    "MemoryReader",
    "MemoryCrossAttention",
    "Memories",
    "lifespan_delta",
    "exclude_memory",
    "reset_memory",
]
