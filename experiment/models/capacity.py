"""Parameter counts that tell capacity apart from vocabulary tables and memory machinery.

``parameters`` counts every parameter once (a tied output layer is the input table). ``token_parameters`` counts
only the parameters that transform a token's hidden state on its way from the input table to its logits, that is
every parameter except

1. lookup tables: every ``nn.Embedding`` (token, absolute-position and relative-position tables);
2. the output layer: the module whose weight maps hidden states to the vocabulary (``get_output_embeddings()``, or
   a ``nn.Linear`` with ``vocab_size`` outputs such as the RMT core's ``to_logits``), its bias included;
3. memory-only parameters: those of the modules that write memory or hold memory's own vectors, and the key and
   value projections and normalisations that act on memory alone (:data:`MEMORY_ONLY`): Memoria's Abstractor and
   its memory attention's key-value projection and memory LayerNorms, the Compressive Transformer's compression, the infinity-former's long-term
   memory key-value projection and memory embedding, the RMT's memory-token embeddings.

The query and output projections of a memory attention count as token parameters: every token passes through
them. Keys and values that one projection computes from tokens and memory together (Transformer-XL's) count too.
"""

from typing import Dict, Set

from torch import nn

# parameter-name fragments of memory-only parameters (see the module docstring); matched on dotted boundaries,
# with list indices left out
MEMORY_ONLY = (
    "memory.abstractor",  # Memoria: writes the working memory
    "memory_reader.attention.kv_proj",  # Memoria: keys and values of the reminded and working memories
    "memory_reader.ln_working",  # Memoria: normalises the working memory
    "memory_reader.ln_reminded",  # Memoria: normalises the reminded memories
    "compression",  # Compressive Transformer: compresses old memories
    "ltm_attn.kv_proj",  # infinity-former: keys and values of the continuous long-term memory
    "attn.memory_embedding",  # infinity-former: marks the memory positions
    "memory_tokens",  # RMT: the write-memory tokens' initial values
    "read_memory_emb",  # RMT: the read-memory tokens' embedding
)


def _is_memory_only(name: str) -> bool:
    """Whether parameter ``name`` matches :data:`MEMORY_ONLY`, ignoring list indices ("h.0.attn" is "h.attn")."""
    dotted = "." + ".".join(part for part in name.split(".") if not part.isdigit()) + "."
    return any(f".{fragment}." in dotted for fragment in MEMORY_ONLY)


def _table_and_head_ids(model: nn.Module) -> Set[int]:
    """ids of the parameters of lookup tables and of the output layer."""
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    modules = [module for module in model.modules() if isinstance(module, nn.Embedding)]
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:
        modules.append(output)
    modules += [
        module for module in model.modules() if isinstance(module, nn.Linear) and module.out_features == vocab_size
    ]
    return {id(parameter) for module in modules for parameter in module.parameters()}


def parameter_counts(model: nn.Module) -> Dict[str, int]:
    """The model's ``parameters`` and ``token_parameters`` (see the module docstring), each parameter once.

    Args:
        model: a model of experiment.models (or any ``nn.Module``; without ``config.vocab_size`` only
            ``get_output_embeddings()`` is taken as the output layer).

    Returns:
        {"parameters": total, "token_parameters": the part that transforms tokens' hidden states}.
    """
    excluded = _table_and_head_ids(model)
    total = token = 0
    for name, parameter in model.named_parameters():  # shared (tied) parameters are listed once
        total += parameter.numel()
        if id(parameter) not in excluded and not _is_memory_only(name):
            token += parameter.numel()
    return {"parameters": total, "token_parameters": token}
