"""Shared test settings: small thread count so that tests stay fast and quiet on 2 cores."""

import torch

torch.set_num_threads(2)
