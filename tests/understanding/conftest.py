"""Tiny simulator data, token cache and text-output world model shared by the understanding tests (CPU, seconds)."""

import pytest
import torch

from worldmodel.datasets.storage import generate_dataset
from worldmodel.tokenizers import VideoTokenizer
from worldmodel.tokenizers.cache import encode_dataset

# 9 frames of 32x32 -> 3 latent frames of 4x4 codes (16 codes); descriptions need up to 320 answer bytes
TINY_TEXT_WORLD = dict(codebook_size=16, latent_frames=3, latent_height=4, latent_width=4, max_text_len=128,
                       d_model=32, n_layers=2, n_heads=2, kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=12,
                       v_head_dim=8, n_dense_layers=1, dense_hidden=64, moe_experts=4, moe_expert_hidden=16,
                       moe_top_k=2, moe_groups=2, moe_topk_groups=1, text_d_model=16, text_layers=1, text_heads=2,
                       text_output=True, max_answer_len=320)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A simulator dataset folder of 10 training episodes of 9 frames of 32x32."""
    root = tmp_path_factory.mktemp("understanding") / "data"
    generate_dataset(root, episodes=10, seed=0, split="train", frames=9, size=32)
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A random tiny video tokenizer (16 codes, 8x spatial, 4x temporal compression)."""
    torch.manual_seed(0)
    return VideoTokenizer(channels=(8, 8, 8), patch_size=4, fsq_levels=(4, 4)).eval()


@pytest.fixture(scope="session")
def tiny_cache(tiny_dataset, tiny_tokenizer, tmp_path_factory):
    """The token cache of ``tiny_dataset`` (its meta.json names the dataset folder)."""
    return encode_dataset(tiny_tokenizer, tiny_dataset, tmp_path_factory.mktemp("understanding") / "cache",
                          progress=False)


@pytest.fixture(scope="session")
def text_checkpoint(tiny_cache, tiny_tokenizer, tmp_path_factory):
    """A pipeline folder: the tiny tokenizer and a text-output world model trained 25 steps on ``tiny_cache``."""
    import lightning as L

    from worldmodel.datasets.tokens import TokenDataModule
    from worldmodel.pipelines import VideoToTextPipeline
    from worldmodel.training.worldmodel_module import WorldModelModule

    root = tmp_path_factory.mktemp("understanding")
    data = TokenDataModule(str(tiny_cache), batch_size=4, understanding=True, context_latent_frames=1,
                           description_share=0.5)
    L.seed_everything(0)
    module = WorldModelModule(model_config=TINY_TEXT_WORLD, lr=1e-2, warmup_steps=1, understanding_share=0.5)
    L.Trainer(max_steps=25, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, default_root_dir=root).fit(module, data)
    path = root / "pipe"
    VideoToTextPipeline(tokenizer=tiny_tokenizer, world_model=module.model.eval()).save_pretrained(path)
    return path
