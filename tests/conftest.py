"""Shared test settings: one thread so that tests stay fast and quiet on 2 cores."""

import torch

torch.set_num_threads(1)
