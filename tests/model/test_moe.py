"""MoE routing and dispatch: groups, selection-only bias, top-p, capacity, grouped vs loop, balancing, HF parity."""

import pytest
import torch

from worldmodel.model import MoE, Router
from worldmodel.model.moe import capacity_mask


def test_routing_stays_inside_the_selected_groups():
    torch.manual_seed(0)
    router = Router(16, n_experts=16, top_k=3, n_groups=4, topk_groups=2)
    router.bias.copy_(torch.randn(16) * 0.5)  # negative biases must not let masked groups win
    x = torch.randn(512, 16)
    r = router(x)
    choice = (r.scores + router.bias).view(-1, 4, 4)
    group_scores = choice.topk(2, dim=-1).values.sum(-1)  # (T, G)
    kept = group_scores.topk(2, dim=-1).indices  # (T, 2)
    expert_group = r.indices // 4  # (T, k)
    inside = (expert_group[:, :, None] == kept[:, None, :]).any(-1)
    assert inside.all()
    assert (r.weights.sum(-1) - 1).abs().max() < 1e-5


def test_bias_changes_selection_but_never_the_gate_weights():
    torch.manual_seed(0)
    router = Router(16, n_experts=8, top_k=2, route_scale=2.5)
    x = torch.randn(256, 16)
    before = router(x)
    router.bias.copy_(torch.linspace(-0.3, 0.3, 8))
    after = router(x)
    assert not torch.equal(before.indices, after.indices)  # selection moved
    for r in (before, after):  # weights are the unbiased scores at the picked experts, renormalised, scaled
        picked = r.scores.gather(1, r.indices)
        assert torch.allclose(r.weights, 2.5 * picked / picked.sum(-1, keepdim=True), atol=1e-6)
    assert torch.equal(before.scores, after.scores)


def test_bias_update_moves_towards_equal_load():
    router = Router(8, n_experts=4, top_k=1, bias_update_speed=0.01)
    router.load.copy_(torch.tensor([10.0, 0.0, 5.0, 5.0]))
    router.update_bias()
    assert torch.allclose(router.bias, torch.tensor([-0.01, 0.01, 0.0, 0.0]))
    assert router.load.sum() == 0


def test_top_p_uses_between_one_and_k_max_experts():
    torch.manual_seed(0)
    moe = MoE(16, n_experts=8, expert_hidden=16, top_k=4, n_shared=0, top_p=0.5, entropy_weight=1e-2)
    moe.router.weight.data.normal_(std=2.0)  # peaked scores so some tokens need few experts
    y, aux, stats = moe(torch.randn(2, 64, 16))
    r = moe.router(torch.randn(256, 16))
    used = r.active.sum(-1)
    assert used.min() >= 1 and used.max() <= 4 and used.unique().numel() > 1
    assert (r.weights[~r.active] == 0).all()
    assert 1.0 <= stats["experts_per_token"] <= 4.0
    assert aux > 0  # the entropy term is on


def test_capacity_drops_overflow_in_token_order():
    indices = torch.tensor([[0, 1], [0, 2], [0, 1], [3, 0]])
    active = torch.ones_like(indices, dtype=torch.bool)
    kept = capacity_mask(indices, active, n_experts=4, capacity=2)
    assert kept.tolist() == [[True, True], [True, True], [False, True], [True, False]]


def test_capacity_overflow_passes_through_the_residual_only_in_training():
    torch.manual_seed(0)
    moe = MoE(16, n_experts=4, expert_hidden=16, top_k=2, n_shared=0, capacity_factor=0.25)
    x = torch.randn(1, 64, 16)
    _, _, stats = moe.train()(x)
    assert 0.5 < stats["dropped_share"] < 1.0
    _, _, stats = moe.eval()(x)
    assert stats["dropped_share"] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_dispatch_matches_the_per_expert_loop(dtype):
    torch.manual_seed(0)
    moe = MoE(32, n_experts=8, expert_hidden=32, top_k=3, n_groups=2, topk_groups=1, n_shared=1).to(dtype)
    x = torch.randn(2, 40, 32, dtype=dtype, requires_grad=True)
    outs, grads = [], []
    for dispatch in ("grouped", "loop"):
        moe.experts.dispatch = dispatch
        moe.zero_grad()
        x.grad = None
        y, aux, _ = moe(x)
        y.float().pow(2).sum().backward()
        outs.append(y.float())
        grads.append(moe.experts.w13.grad.float().clone())
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert torch.allclose(outs[0], outs[1], atol=tol, rtol=tol)
    assert torch.allclose(grads[0], grads[1], atol=tol * 10, rtol=tol * 10)


def _balance_run(bias_update_speed: float, steps: int = 200) -> list[float]:
    """Train one MoE layer on a fixed regression; inputs share a mean direction, which skews routing at init."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    moe = MoE(32, n_experts=8, expert_hidden=32, top_k=2, n_shared=0, bias_update_speed=bias_update_speed)
    teacher = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 32))
    opt = torch.optim.AdamW(moe.parameters(), lr=1e-2)
    mean = 0.3 * torch.randn(32, generator=g)
    history = []
    for _ in range(steps):
        x = mean + torch.randn(4, 64, 32, generator=g)
        y, aux, stats = moe(x)
        loss = (y - teacher(x).detach()).pow(2).mean() + aux
        opt.zero_grad()
        loss.backward()
        opt.step()
        moe.router.update_bias()
        history.append(stats["max_mean_load"].item())
    return history


def test_bias_balancing_keeps_experts_busy_and_its_absence_collapses():
    balanced = _balance_run(1e-2)[-50:]
    unbalanced = _balance_run(0.0)[-50:]
    assert sum(balanced) / 50 <= 1.5, balanced
    assert sum(unbalanced) / 50 >= 2.5, unbalanced  # most tokens crowd onto two or three of eight experts


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"top_k": 9}, "top_k"),
        ({"n_groups": 3}, "divisible"),
        ({"n_groups": 4, "topk_groups": 5}, "topk_groups"),
        ({"n_groups": 4, "topk_groups": 1, "top_k": 3}, "kept groups"),
        ({"score_func": "relu"}, "score_func"),
        ({"top_p": 1.5}, "top_p"),
        ({"capacity_factor": 0.0}, "capacity_factor"),
        ({"dispatch": "magic"}, "dispatch"),
    ],
)
def test_bad_moe_configs_raise_clear_errors(kwargs, message):
    base = {"d_model": 8, "n_experts": 8, "expert_hidden": 8, "top_k": 2}
    with pytest.raises(ValueError, match=message):
        MoE(**{**base, **kwargs})


def test_matches_huggingface_deepseek_v3_moe():
    from transformers.models.deepseek_v3.configuration_deepseek_v3 import DeepseekV3Config
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    torch.manual_seed(0)
    d, e, h = 32, 16, 24
    config = DeepseekV3Config(
        hidden_size=d, moe_intermediate_size=h, n_routed_experts=e, num_experts_per_tok=3, n_group=4, topk_group=2,
        n_shared_experts=1, routed_scaling_factor=2.5, norm_topk_prob=True, hidden_act="silu",
    )  # fmt: skip
    hf = DeepseekV3MoE(config).eval()
    ours = MoE(d, e, h, top_k=3, n_groups=4, topk_groups=2, n_shared=1, route_scale=2.5).eval()
    with torch.no_grad():
        hf.gate.weight.normal_(std=0.3)
        hf.experts.gate_up_proj.normal_(std=0.2)
        hf.experts.down_proj.normal_(std=0.2)
        ours.router.weight.copy_(hf.gate.weight)
        ours.experts.w13.copy_(hf.experts.gate_up_proj)
        ours.experts.w2.copy_(hf.experts.down_proj)
        ours.shared.load_state_dict(hf.shared_experts.state_dict())
        x = torch.randn(2, 50, d)
        expected = hf(x)
        got, _, _ = ours(x)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_moe_trains_under_bf16_autocast_with_fp32_router_math():
    torch.manual_seed(0)
    moe = MoE(32, n_experts=8, expert_hidden=32, top_k=2, n_groups=2, topk_groups=1, n_shared=1)
    x = torch.randn(2, 16, 32, requires_grad=True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert moe.router(x.reshape(-1, 32)).scores.dtype == torch.float32
        y, aux, _ = moe(x)
    (y.float().pow(2).mean() + aux).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("top_p", [None, 0.6])
def test_few_token_decoding_path_matches_the_sorted_dispatch(top_p):
    torch.manual_seed(0)
    moe = MoE(32, n_experts=8, expert_hidden=16, top_k=2, n_groups=2, topk_groups=1, top_p=top_p).eval()
    x = torch.randn(1, 3, 32)  # 3 tokens x 2 slots <= 8 experts: the gathered-weights path under no_grad
    with torch.no_grad():
        fast, aux, stats = moe(x, with_stats=False)
    sorted_dispatch, _, _ = moe(x)  # grad enabled: the sort-by-expert dispatch
    assert aux is None and stats == {}
    assert torch.allclose(fast, sorted_dispatch, atol=1e-6)
