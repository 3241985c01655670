"""Tiny components shared by the pipeline tests."""

import pytest
import torch
from pipeline_toys import ToyWorldModel

from worldmodel.tokenizers import VideoTokenizer


@pytest.fixture(scope="session")
def tiny_parts():
    """(tokenizer, world model, draft model): random init, 32x32 frames, 3 latent frames of 4x4 codes."""
    torch.manual_seed(0)
    tokenizer = VideoTokenizer(channels=(8, 8, 8), patch_size=4, fsq_levels=(4, 4))
    world = ToyWorldModel(codebook_size=tokenizer.codebook_size, latent_frames=3)
    draft = ToyWorldModel(codebook_size=tokenizer.codebook_size, latent_frames=3, dim=8)
    return tokenizer, world, draft
