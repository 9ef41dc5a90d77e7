"""The tutorial of README.md as a script: run it with `python examples/tutorial.py`."""

import torch

from memoria import EngramType, Memoria

torch.manual_seed(42)

# Memoria parameters
num_reminded_stm = 4
stm_capacity = 16
ltm_search_depth = 5
initial_lifespan = 3
num_final_ltms = 4

# Data parameters
batch_size = 2
sequence_length = 8
hidden_dim = 64

memoria = Memoria(
    num_reminded_stm=num_reminded_stm,
    stm_capacity=stm_capacity,
    ltm_search_depth=ltm_search_depth,
    initial_lifespan=initial_lifespan,
    num_final_ltms=num_final_ltms,
)
data = torch.rand(batch_size, sequence_length, hidden_dim)

print("# 3. Add data as working memory")
memoria.add_working_memory(data)
print(len(memoria.engrams))
print(memoria.engrams.data.shape)
print(memoria.engrams.lifespan)

print("# 4. Remind memories")
reminded_memories, reminded_indices = memoria.remind()
print(reminded_memories)
print(reminded_indices)

print("# 5. Adjust lifespan and memories")
memoria.adjust_lifespan_and_memories(reminded_indices, torch.zeros_like(reminded_indices))
print(memoria.engrams.lifespan)
print(memoria.engrams.engrams_types)
print(repr(EngramType.SHORTTERM))

print("# 6. Repeat one more time")
data2 = torch.rand(batch_size, sequence_length, hidden_dim)
memoria.add_working_memory(data2)
print(len(memoria.engrams))
print(memoria.engrams.lifespan)
reminded_memories, reminded_indices = memoria.remind()
print(reminded_memories.shape)
print(reminded_indices.shape)
print(reminded_indices)
memoria.adjust_lifespan_and_memories(reminded_indices, torch.full_like(reminded_indices, 5))
print(memoria.engrams.lifespan)

print("# 7. Repeat")
for _ in range(10):
    data = torch.rand(batch_size, sequence_length, hidden_dim)
    memoria.add_working_memory(data)
    reminded_memories, reminded_indices = memoria.remind()
    lifespan_delta = torch.randint_like(reminded_indices, 0, 6).float()
    memoria.adjust_lifespan_and_memories(reminded_indices, lifespan_delta)
print(len(memoria.engrams))
print(memoria.engrams.engrams_types)
print(repr(EngramType.LONGTERM), repr(EngramType.NULL))
print(memoria.engrams.lifespan)
