import math

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.train.muon import NS_COEFFICIENTS, Muon, MuonAdamW, orthogonalize, update_scale


def quintic(s, steps=5):
    """What Newton-Schulz does to one singular value s (already divided by the Frobenius norm)."""
    a, b, c = NS_COEFFICIENTS
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


def with_singular_values(values, rows, cols, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(rows, len(values), generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, len(values), generator=g, dtype=torch.float64))
    return (u @ torch.diag(values) @ v.T).float()


@pytest.mark.parametrize("shape", [(16, 24), (24, 16)])
def test_newton_schulz_maps_each_singular_value_by_the_quintic(shape):
    # NS keeps the singular vectors and sends each s / ||G||_F through the quintic 5 times;
    # the map is not monotone, so compare sorted values. Tolerance: bf16 rounding (8-bit mantissa)
    # amplified by the map's slope (up to a = 3.4 per step).
    s = torch.linspace(0.05, 1.0, 16, dtype=torch.float64)
    out = orthogonalize(with_singular_values(s, *shape))
    assert out.dtype == torch.bfloat16 and out.shape == shape
    expected = quintic(s / s.norm()).float().sort(descending=True).values
    torch.testing.assert_close(torch.linalg.svdvals(out.float()), expected, atol=0.08, rtol=0)


def test_newton_schulz_of_a_random_gradient_lands_in_the_band():
    # A 64 x 256 Gaussian has singular values within sqrt(256) * (1 +- 1/2) (Marchenko-Pastur),
    # i.e. s / ||G||_F in ~[0.06, 0.19]; for inputs above 0.002 the quintic ends in [0.68, 1.20].
    g = torch.Generator().manual_seed(0)
    for matrix in (torch.randn(64, 256, generator=g), torch.randn(256, 64, generator=g)):
        s = torch.linalg.svdvals(orthogonalize(matrix).float())
        assert s.min() > 0.65 and s.max() < 1.25


def test_update_rms_matches_adamw():
    # An orthogonal rows x cols matrix has RMS 1/sqrt(max(rows, cols)); scaled, RMS 0.2.
    assert update_scale(torch.Size([64, 256])) == pytest.approx(0.2 * 16)
    w = torch.zeros(64, 256, requires_grad=True)
    w.grad = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    Muon([w], lr=1.0, nesterov=False).step()
    rms = w.detach().pow(2).mean().sqrt().item()
    assert 0.2 * 0.65 < rms < 0.2 * 1.25


def test_lr_scale_and_weight_decay():
    g = torch.Generator().manual_seed(2)
    start, grad = torch.randn(8, 12, generator=g), torch.randn(8, 12, generator=g)
    deltas = []
    for scale in (1.0, 2.0):
        w = start.clone().requires_grad_()
        w.grad = grad.clone()
        Muon([w], lr=0.01, lr_scale=scale).step()
        deltas.append(w.detach() - start)
    torch.testing.assert_close(deltas[1], 2 * deltas[0])
    w = start.clone().requires_grad_()
    w.grad = torch.zeros_like(grad)  # a zero gradient orthogonalizes to zero: only decay remains
    Muon([w], lr=0.1, weight_decay=0.5, lr_scale=2.0).step()
    torch.testing.assert_close(w.detach(), start * (1 - 0.1 * 2.0 * 0.5))


def test_muon_solves_least_squares():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    target = torch.randn(16, 24, generator=g)
    target /= torch.linalg.matrix_norm(target, 2)  # spectral norm 1: ~20 steps of size ~0.05
    w = torch.zeros(16, 24, requires_grad=True)
    opt = Muon([w], lr=0.05)
    losses = []
    for _ in range(60):
        loss = (x @ w - x @ target).pow(2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.02 * losses[0]


def test_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D"):
        Muon([torch.zeros(3, requires_grad=True)])


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch 2.9")
def test_matches_torch_muon_with_adamw_rms_scaling():
    g = torch.Generator().manual_seed(3)
    start, x, y = (torch.randn(*s, generator=g) for s in ((24, 40), (64, 24), (64, 40)))
    updates = []
    for make in (
        lambda w: Muon([w], lr=0.01, weight_decay=0.1),
        lambda w: torch.optim.Muon([w], lr=0.01, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"),
    ):
        w = (start * 0.1).requires_grad_()
        opt = make(w)
        for _ in range(3):
            opt.zero_grad()
            (x @ w - y).pow(2).mean().backward()
            opt.step()
        updates.append(w.detach() - start * 0.1)
    # both run Newton-Schulz in bf16 but round differently (torch fuses steps with addmm)
    assert (updates[0] - updates[1]).norm() < 0.06 * updates[1].norm()


def test_combined_load_rejects_an_adamw_state():
    w, b = torch.zeros(4, 4, requires_grad=True), torch.zeros(4, requires_grad=True)
    opt = MuonAdamW(Muon([w]), torch.optim.AdamW([b]))
    with pytest.raises(UserError, match="train.optimizer=adamw"):
        opt.load_state_dict(torch.optim.AdamW([w, b]).state_dict())


def test_lr_scale_is_the_configured_one_after_loading():
    w = torch.zeros(4, 4, requires_grad=True)
    saved = Muon([w], lr_scale=3.0).state_dict()
    fresh = Muon([w], lr_scale=1.5)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr_scale"] == 1.5
    assert math.isclose(fresh.param_groups[0]["momentum"], 0.95)
