"""Tiny real components shared by the pipeline tests (random init, CPU, seconds to build)."""

import pytest
import torch

from worldmodel.model import WorldModel
from worldmodel.tokenizers import VideoTokenizer

TINY_WORLD = dict(latent_frames=3, latent_height=4, latent_width=4, max_text_len=64, d_model=32, n_layers=2,
                  n_heads=2, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=12, v_head_dim=8,
                  n_dense_layers=1, dense_hidden=64, moe_experts=4, moe_expert_hidden=16, moe_top_k=2, moe_groups=2,
                  moe_topk_groups=1, text_d_model=16, text_layers=1, text_heads=2)


@pytest.fixture(scope="session")
def tiny_parts():
    """(tokenizer, world model, draft model): 32x32 frames, 3 latent frames of 4x4 codes, 16 codes."""
    torch.manual_seed(0)
    tokenizer = VideoTokenizer(channels=(8, 8, 8), patch_size=4, fsq_levels=(4, 4))
    world = WorldModel(codebook_size=tokenizer.codebook_size, **TINY_WORLD)  # bridges start open
    draft = WorldModel(codebook_size=tokenizer.codebook_size, **{**TINY_WORLD, "n_layers": 1})
    return tokenizer.eval(), world.eval(), draft.eval()



@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tiny_parts):
    """The tiny tokenizer and world model saved as a pipeline folder (no draft model)."""
    from worldmodel.pipelines import TextToVideoPipeline

    tokenizer, world, _ = tiny_parts
    path = tmp_path_factory.mktemp("ckpt") / "pipe"
    TextToVideoPipeline(tokenizer=tokenizer, world_model=world).save_pretrained(path)
    return path
