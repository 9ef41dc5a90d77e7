"""A Hugging Face GPT-2 with one MemoriaLayer learns to name a token it read one segment earlier.

Segment 1 repeats a random token, segment 2 asks for it: only memory can answer. python -m examples.add_memoria_gpt2
"""

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from memoria.nn import MemoriaLayer


class WithMemoria(nn.Module):  # a GPT-2 block followed by a pre-norm Memoria branch
    def __init__(self, block, dim, num_heads):
        super().__init__()
        self.block, self.norm = block, nn.LayerNorm(dim)
        self.memoria = MemoriaLayer(dim, num_heads, num_working_memories=4, stm_capacity=8, num_reminded_stm=4)

    def forward(self, hidden_states, *args, **kwargs):
        x = self.block(hidden_states, *args, **kwargs)
        return x + self.memoria(self.norm(x))


torch.manual_seed(0)
config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=8, vocab_size=16, bos_token_id=0, eos_token_id=0)
model = GPT2LMHeadModel(config)
model.transformer.h[1] = WithMemoria(model.transformer.h[1], config.n_embd, config.n_head)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
for step in range(1, 41):
    keys = torch.randint(1, config.vocab_size, (16, 1)).expand(-1, config.n_positions)  # [B, L]; token 0 asks
    model.transformer.h[1].memoria.reset_memory()  # new samples in every row
    model(keys)  # segment 1: written into memory
    loss = model(torch.zeros_like(keys), labels=keys).loss  # segment 2: answered from memory
    optimizer.zero_grad(), loss.backward(), optimizer.step()
    if step % 10 == 0:
        print(f"step {step}: loss {loss.item():.2f} (chance 2.71)")
