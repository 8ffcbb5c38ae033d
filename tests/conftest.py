"""Shared test set-up."""

import torch

# The suite's tensors are small: one intra-op thread is as fast and immune to oversubscription
# (measured on a loaded 2-core machine: a tiny softmax took 19 ms with two threads, 2 µs with one).
torch.set_num_threads(1)
