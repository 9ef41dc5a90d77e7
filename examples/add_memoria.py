"""A Transformer with one MemoriaLayer recalls a key it saw four segments earlier: python -m examples.add_memoria"""

import torch
from torch import nn

from memoria.nn import MemoriaLayer

KEYS, LENGTH, SEGMENTS = 8, 8, 5  # tokens 0-7 are keys, 8-15 distractors


def episodes(batch_size):  # [B, SEGMENTS, LENGTH]: distractors, and a key somewhere in segment 0
    tokens, keys = torch.randint(KEYS, 2 * KEYS, (batch_size, SEGMENTS, LENGTH)), torch.randint(0, KEYS, (batch_size,))
    tokens[torch.arange(batch_size), 0, torch.randint(0, LENGTH, (batch_size,))] = keys
    return tokens, keys


class Recaller(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.body = nn.Sequential(nn.Embedding(2 * KEYS, dim), nn.TransformerEncoderLayer(dim, 2, 2 * dim, 0.0))
        self.norm, self.head = nn.LayerNorm(dim), nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, KEYS))
        self.memoria = MemoriaLayer(dim, 2, num_working_memories=None, stm_capacity=16, num_reminded_stm=16)

    def forward(self, tokens, erase_memory=False):  # -> the key's logits at every position of the last segment
        for i, segment in enumerate(tokens.unbind(1)):
            self.memoria.reset_memory() if i == 0 or erase_memory else None  # new episodes; or the ablation
            x = self.body(segment)
            x = x + self.memoria(self.norm(x))  # read the memories of earlier segments, write this one
        return self.head(x)  # [B, LENGTH, KEYS]


torch.manual_seed(0)
model = Recaller()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
for tokens, keys in (episodes(32) for _ in range(200)):
    loss = nn.functional.cross_entropy(model(tokens).flatten(0, 1), keys.repeat_interleave(LENGTH))
    optimizer.zero_grad(), loss.backward(), optimizer.step()
tokens, keys = episodes(512)
with torch.no_grad():  # fresh episodes, read with the memory, then with the memory erased before every segment
    print(*(f"erase_memory={e}: {(model(tokens, e).argmax(-1) == keys[:, None]).float().mean():.2f}" for e in (0, 1)))
