"""WorldModelModule: training on a token cache, checkpoint + resume, export, text dropout, 2-process DDP on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from safetensors.torch import save_file

from worldmodel.datasets.tokens import TokenDataModule
from worldmodel.model import WorldModel
from worldmodel.training.common import adamw_warmup_cosine
from worldmodel.training.export import export_checkpoint
from worldmodel.training.worldmodel_module import (
    WorldModelModule,
    caption_probe_loss,
    feature_regression_loss,
    motion_weights,
    scheduled_sampling_inputs,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(
    codebook_size=32, latent_frames=2, latent_height=2, latent_width=3, max_text_len=32, d_model=32, n_layers=2,
    n_heads=2, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=6, v_head_dim=8, dense_hidden=64,
    moe_experts=4, moe_expert_hidden=16, moe_top_k=2, moe_groups=2, moe_topk_groups=1, moe_bias_update_speed=0.01,
    text_d_model=16, text_layers=1, text_heads=2,
)  # fmt: skip


RUNNER = """
import sys
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

LightningCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
             save_config_kwargs={"overwrite": True}, args=["fit", *sys.argv[1:]])
"""


def write_token_cache(path: Path, rows: int = 16, seed: int = 0) -> Path:
    """A random token cache in the layout of worldmodel.tokenizers.cache (codes, index, meta)."""
    g = torch.Generator().manual_seed(seed)
    path.mkdir(parents=True)
    codes = torch.randint(0, TINY["codebook_size"], (rows, 2, 2, 3), generator=g, dtype=torch.int32)
    save_file({"codes": codes}, str(path / "codes.safetensors"))
    lines = [json.dumps({"id": f"ep{i}", "captions": [f"ball {i}", f"a ball number {i}"]}) for i in range(rows)]
    (path / "index.jsonl").write_text("\n".join(lines) + "\n")
    meta = {"codebook_size": TINY["codebook_size"], "latent_shape": [2, 2, 3], "frames": 5, "height": 16, "width": 24}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def trainer(tmp_path: Path, max_steps: int) -> L.Trainer:
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    return L.Trainer(
        max_steps=max_steps, accelerator="cpu", devices=1, logger=False, callbacks=[checkpoint],
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1, val_check_interval=2,
        check_val_every_n_epoch=None, default_root_dir=tmp_path,
    )  # fmt: skip


def test_trains_checkpoints_resumes_and_exports(tmp_path):
    cache = write_token_cache(tmp_path / "tokens")
    data = TokenDataModule(str(cache), val_dir=str(cache), batch_size=4)
    L.seed_everything(0)
    module = WorldModelModule(model_config=TINY, lr=1e-2, warmup_steps=1, export_dir=str(tmp_path / "export"))
    trainer(tmp_path, 3).fit(module, data)
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    metrics = module.trainer.callback_metrics
    for key in ("train/ce", "train/aux_loss", "moe/layer1/max_mean_load", "moe/layer1/dropped_share",
                "moe/layer1/load/e03", "moe/layer1/experts_per_token", "moe/layer1/utilisation", "val/ce",
                "val/ce_first_frame", "val/ce_first_frame_wrong_caption"):  # fmt: skip
        assert key in metrics, sorted(metrics)
    bias = module.model.blocks[1].ffn.router.bias
    assert bias.abs().sum() > 0  # balancing bias stepped

    resumed = WorldModelModule(model_config=TINY, lr=1e-2, warmup_steps=1)
    second = trainer(tmp_path, 5)
    second.fit(resumed, data, ckpt_path="last")
    assert second.global_step == 5
    exported = WorldModel.from_pretrained(tmp_path / "export")  # written at train end of the first run
    assert exported.config.codebook_size == TINY["codebook_size"]

    _, out = export_checkpoint(tmp_path / "ckpt" / "last.ckpt", tmp_path / "from_ckpt")
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    reloaded = WorldModel.from_pretrained(out).state_dict()
    assert set(reloaded) == {k.removeprefix("model.") for k in saved}  # the balancing biases included
    for key, value in reloaded.items():
        assert torch.equal(value, saved[f"model.{key}"]), key


def test_restart_text_keeps_the_trunk_and_reads_config_overrides(tmp_path):
    torch.manual_seed(0)
    trained = WorldModel(**TINY)
    trained.save_pretrained(tmp_path / "trained")
    module = WorldModelModule(model_config={**TINY, "text_center": True}, pretrained=str(tmp_path / "trained"),
                              restart_text=True)
    model, before = module.model, trained.state_dict()
    assert model.config.text_center and model.text_encoder.center
    for key, value in model.state_dict().items():
        fresh = key.startswith("text_encoder.") or ".bridge." in key
        if not fresh:
            assert torch.equal(value, before[key]), key
        elif key.endswith("bridge.out.weight"):
            assert not value.any(), key
    assert not torch.equal(model.text_encoder.embed.weight, trained.text_encoder.embed.weight)
    ids = torch.randint(0, TINY["codebook_size"], (2, 12))
    ids[:, 0] = model.bos_token_id
    with torch.no_grad():  # zero output projections: the fresh bridges change no logit yet
        text = model.encode_text(*module.text_tokenizer.encode(["a red ball", "two balls"]))
        unconditional = model.encode_text(*module.text_tokenizer.encode(["", ""]))
        assert torch.equal(model.eval()(ids, text).logits, model(ids, unconditional).logits)
    with pytest.raises(ValueError, match="restart_text keeps a pretrained"):
        WorldModelModule(model_config=TINY, restart_text=True)


def test_caption_use_scores_the_first_frame_with_own_and_wrong_captions():
    torch.manual_seed(0)
    module = WorldModelModule(model_config={**TINY, "bridge_gate_init": 1.0})
    codes = torch.randint(0, TINY["codebook_size"], (3, 2, 2, 3))
    ids, targets = module._inputs(codes)
    captions = ["a red ball", "a blue ball falls", "two balls collide"]
    with torch.no_grad():
        logits = module.model.eval()(ids, module.model.encode_text(*module.text_tokenizer.encode(captions))).logits
        scores = module._caption_use(ids, targets, captions, logits)
        same = module._caption_use(ids, targets, ["a ball"] * 3, module.model(
            ids, module.model.encode_text(*module.text_tokenizer.encode(["a ball"] * 3))).logits)
    assert set(scores) == {"val/ce_first_frame", "val/ce_first_frame_wrong_caption"}
    assert scores["val/ce_first_frame"] != scores["val/ce_first_frame_wrong_caption"]  # the text reaches the codes
    assert torch.allclose(same["val/ce_first_frame"], same["val/ce_first_frame_wrong_caption"])  # one caption: equal


def test_caption_probe_targets_the_named_colours_and_trains_the_text_pathway():
    torch.manual_seed(0)
    module = WorldModelModule(model_config=TINY, caption_probe_weight=0.5)
    hidden = torch.zeros(3, 4, TINY["d_model"])
    with torch.no_grad():
        module.caption_probe.weight.zero_()
        module.caption_probe.bias.copy_(torch.arange(8.0))  # colours in COLOR_NAMES order: red green blue ... white
    log_p = torch.log_softmax(torch.arange(8.0), 0)
    one = caption_probe_loss(module.caption_probe, hidden, ["a red ball", "no colour here", "a ball"])
    assert torch.allclose(one, -log_p[0])  # only the row naming a colour counts
    two = caption_probe_loss(module.caption_probe, hidden, ["red and white balls", "", "a blue ball"])
    assert torch.allclose(two, (-(log_p[0] + log_p[7]) / 2 - log_p[2]) / 2)
    assert caption_probe_loss(module.caption_probe, hidden, ["", "a ball", "balls"]) == 0
    codes = torch.randint(0, TINY["codebook_size"], (2, 2, 2, 3))
    loss = module._step({"codes": codes, "captions": ["a red ball", "a green ball"]}, "val", 0)
    loss.backward()
    assert module.model.text_encoder.embed.weight.grad.abs().sum() > 0 and module.caption_probe.weight.grad.any()
    with pytest.raises(ValueError, match="caption_probe_weight"):
        WorldModelModule(model_config=TINY, caption_probe_weight=-1.0)
    assert "caption_probe" not in dict(module.model.named_modules())  # training-only, not exported


def test_feature_regression_targets_standardised_rows_and_features_get_their_own_learning_rate():
    torch.manual_seed(0)
    table = torch.randn(TINY["codebook_size"], 3) * torch.tensor([1.0, 5.0, 0.1]) + 2.0  # (K, F)
    head = torch.nn.Linear(TINY["d_model"], 3)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    targets = torch.tensor([[0, 1], [2, 3]])
    wanted = (table[targets] - table.mean(0)) / table.std(0)
    loss = feature_regression_loss(head, torch.zeros(2, 2, TINY["d_model"]), targets, table)
    assert torch.allclose(loss, wanted.pow(2).mean())  # every column counts in its own standard deviations
    with torch.no_grad():
        head.bias.copy_(wanted[0, 0])
    assert feature_regression_loss(head, torch.zeros(1, 1, TINY["d_model"]), targets[:1, :1], table) < 1e-10

    config = {**TINY, "code_feature_dim": 3}
    module = WorldModelModule(model_config=config, lr=1e-3, feature_regression_weight=0.5, feature_lr_scale=10.0)
    with torch.no_grad():
        module.model.code_features.table.copy_(table)
    codes = torch.randint(0, TINY["codebook_size"], (2, 2, 2, 3))
    module._step({"codes": codes, "captions": ["a", "b"]}, "val", 0).backward()
    params = dict(module.named_parameters())
    trunk = next(p for name, p in params.items() if name.startswith("model.") and "code_features" not in name)
    assert module.feature_head.weight.grad.any() and trunk.grad.any()
    assert "feature_head" not in dict(module.model.named_modules())  # training-only, not exported
    optimizer = adamw_warmup_cosine(module, 10, 1e-3, 0.1, (0.9, 0.95), 1, 0.1, module.lr_scales())["optimizer"]
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    features = module.model.code_features
    assert rates[id(features.embed)] == rates[id(features.head)] == pytest.approx(1e-2)
    assert rates[id(trunk)] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(module.parameters()))
    assert [g["weight_decay"] for g in optimizer.param_groups][0] == 0.1  # decayed groups first, as checkpoints saved
    with pytest.raises(ValueError, match="code features"):
        WorldModelModule(model_config=TINY, feature_regression_weight=0.5)
    with pytest.raises(ValueError, match="feature_lr_scale"):
        WorldModelModule(model_config=config, feature_lr_scale=0.0)


def test_inputs_are_bos_then_shifted_codes_and_text_dropout_is_seeded():
    module = WorldModelModule(model_config=TINY, text_dropout=0.5, seed=3)
    codes = torch.arange(12).view(1, 2, 2, 3)
    ids, targets = module._inputs(codes)
    assert ids[0].tolist() == [module.model.bos_token_id] + list(range(11))
    assert targets[0].tolist() == list(range(12))
    captions = [f"caption {i}" for i in range(64)]
    first, again = module._drop_captions(captions), module._drop_captions(captions)
    assert first == again and 10 < first.count("") < 54
    with pytest.raises(ValueError, match="text_dropout"):
        WorldModelModule(model_config=TINY, text_dropout=1.5)
    with pytest.raises(ValueError, match=r"\(B, t, h, w\)"):
        module._inputs(codes[0])


def test_motion_weights_mark_codes_that_changed_since_the_previous_latent_frame():
    codes = torch.tensor([[[[1, 2]], [[1, 3]], [[4, 3]]]])  # (B=1, t=3, h=1, w=2)
    assert motion_weights(codes, 3.0)[0].tolist() == [1, 1, 1, 3, 3, 1]
    assert motion_weights(codes, 1.0).eq(1).all()
    module = WorldModelModule(model_config=TINY, motion_weight=4.0)
    batch = {"codes": torch.randint(0, TINY["codebook_size"], (2, 2, 2, 3)), "captions": ["a", "b"]}
    plain = WorldModelModule(model_config=TINY)
    plain.model.load_state_dict(module.model.state_dict())
    torch.manual_seed(0)
    weighted = module._step(batch, "val", 0)
    torch.manual_seed(0)
    assert not torch.allclose(weighted, plain._step(batch, "val", 0))  # the weights change the loss
    with pytest.raises(ValueError, match="motion_weight"):
        WorldModelModule(model_config=TINY, motion_weight=0.5)


def test_scheduled_sampling_replaces_a_share_of_codes_by_greedy_predictions():
    torch.manual_seed(0)
    module = WorldModelModule(model_config=TINY, scheduled_sampling=0.5)
    ids, _ = module._inputs(torch.randint(0, TINY["codebook_size"], (4, 2, 2, 3)))
    text = module.model.encode_text(*module.text_tokenizer.encode(["a"] * 4))
    module.model.train()
    mixed = scheduled_sampling_inputs(module.model, ids, text, 0.5, torch.Generator().manual_seed(1))
    assert module.model.training  # the mode is restored
    assert (mixed[:, 0] == module.model.bos_token_id).all()
    with torch.no_grad():
        greedy = module.model.eval()(ids, text).logits[:, :-1].argmax(-1)  # (B, N-1)
    changed = mixed[:, 1:] != ids[:, 1:]
    assert changed.any() and (mixed[:, 1:][changed] == greedy[changed]).all()  # only ever the model's prediction
    again = scheduled_sampling_inputs(module.model, ids, text, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(mixed, again)  # seeded
    assert torch.equal(scheduled_sampling_inputs(module.model, ids, text, 0.0, torch.Generator()), ids)
    with pytest.raises(ValueError, match="scheduled_sampling"):
        WorldModelModule(model_config=TINY, scheduled_sampling=1.5)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_with_the_shipped_config(tmp_path):
    cache = write_token_cache(tmp_path / "tokens")
    config = yaml.safe_load((ROOT / "configs" / "worldmodel-tiny.yaml").read_text())
    config["model"]["init_args"]["model_config"] = TINY
    config["model"]["init_args"]["export_dir"] = str(tmp_path / "export")
    config["data"]["init_args"].update(train_dir=str(cache), val_dir=None, tokenizer=None, train_videos=None,
                                       val_videos=None, batch_size=2)  # fmt: skip
    config["trainer"].update(max_steps=2, default_root_dir=str(tmp_path), val_check_interval=None,
                             enable_progress_bar=False)  # fmt: skip
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path)
    config["trainer"]["callbacks"][0]["init_args"].update(dirpath=str(tmp_path / "ckpt"), monitor=None)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    runner = tmp_path / "train.py"  # LightningCLI as `worldmodel train` runs it; DDP re-launches this script
    runner.write_text(RUNNER)
    command = [sys.executable, str(runner), "--config", str(tmp_path / "config.yaml"),
               "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert WorldModel.from_pretrained(tmp_path / "export").config.n_layers == TINY["n_layers"]


def test_position_lr_scale_speeds_the_code_position_embeddings_only():
    config = {**TINY, "code_positions": True}
    module = WorldModelModule(model_config=config, lr=1e-3, position_lr_scale=20.0)
    optimizer = adamw_warmup_cosine(module, 10, 1e-3, 0.1, (0.9, 0.95), 1, 0.1, module.lr_scales())["optimizer"]
    rates = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rates[id(module.model.row_embed)] == rates[id(module.model.col_embed)] == pytest.approx(2e-2)
    assert rates[id(module.model.embed.weight)] == pytest.approx(1e-3)
    assert WorldModelModule(model_config=config).lr_scales() == {}
    with pytest.raises(ValueError, match="needs a world model with code_positions"):
        WorldModelModule(model_config=TINY, position_lr_scale=20.0)
    with pytest.raises(ValueError, match="position_lr_scale must be > 0"):
        WorldModelModule(model_config=config, position_lr_scale=0.0)
