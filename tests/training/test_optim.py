from __future__ import annotations

import pytest
import torch

from bertkit.training.optim import clip_gradients, make_optimizer


def trained(fused_clip: bool, max_norm: float, steps: int = 5) -> list[torch.Tensor]:
    """A small model after ``steps`` AdamW steps on loud gradients, clipped our way or torch's."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3))
    optimizer = make_optimizer(model, lr=1e-2, weight_decay=0.01)
    params = [p for p in model.parameters()]
    for step in range(steps):
        x = torch.randn(4, 8) * (10 if step % 2 else 0.01)  # one step clipped, the next not
        model(x).pow(2).sum().backward()
        if fused_clip:
            clip_gradients(optimizer, params, max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clipping_inside_the_fused_step_equals_clip_grad_norm(max_norm):
    assert make_optimizer(torch.nn.Linear(2, 2), 1e-3, 0.0).defaults["fused"]
    ours, torch_way = trained(True, max_norm), trained(False, max_norm)
    for a, b in zip(ours, torch_way):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clipping_changes_the_step_when_the_norm_is_over_the_limit():
    # the same run unclipped ends elsewhere: the check above would notice clipping being skipped
    clipped, unclipped = trained(True, 0.5), trained(True, 1e6)
    assert max((a - b).abs().max().item() for a, b in zip(clipped, unclipped)) > 1e-3


def test_unfused_optimizer_is_clipped_in_place():
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=False)
    model(torch.randn(2, 4) * 100).sum().backward()
    clip_gradients(optimizer, list(model.parameters()), 1.0)
    norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert norm.item() == pytest.approx(1.0, rel=1e-4) and not hasattr(optimizer, "grad_scale")
