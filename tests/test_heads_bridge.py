"""Bridge sampler: oracle recovery for any step count, exact step vs a fine RK4 ODE integration, determinism."""
import pytest
import torch

from c2ser.heads.bridge import bridge_sample, exact_step
from c2ser.heads.schedules import Schedule


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 8, 32])
@pytest.mark.parametrize("kind", ["logistic", "linear"])
def test_oracle_denoiser_returns_x0_exactly(steps, kind):
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(5, 64, generator=g, dtype=torch.float64), torch.randn(5, 64, generator=g, dtype=torch.float64)
    out = bridge_sample(lambda x, t: x0, x1, Schedule(kind), steps, generator=g)
    assert torch.allclose(out, x0, atol=1e-12)


def test_exact_step_matches_fine_rk4_integration():
    sch = Schedule("logistic", k=10.0, t_c=0.5, sigma_max=0.5)
    g = torch.Generator().manual_seed(1)
    x0, x1, xt = (torch.randn(4, 16, generator=g, dtype=torch.float64) for _ in range(3))

    def field(x, t):  # dx/dt = mu_t' + (sigma'/sigma)(x - mu_t), derivatives by central differences
        h = 1e-6
        tt = torch.tensor(t, dtype=torch.float64)
        dmu = (sch.mu(tt + h, x0, x1) - sch.mu(tt - h, x0, x1)) / (2 * h)
        dsig = (sch.std(tt + h) - sch.std(tt - h)) / (2 * h)
        return dmu + dsig / sch.std(tt) * (x - sch.mu(tt, x0, x1))

    t, s, n = 0.9, 0.1, 4000
    x, dt = xt.clone(), (s - t) / n
    for i in range(n):
        ti = t + i * dt
        k1 = field(x, ti)
        k2 = field(x + dt / 2 * k1, ti + dt / 2)
        k3 = field(x + dt / 2 * k2, ti + dt / 2)
        k4 = field(x + dt * k3, ti + dt)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    exact = exact_step(xt, torch.tensor(t, dtype=torch.float64), torch.tensor(s, dtype=torch.float64), x0, x1, sch)
    assert torch.allclose(exact, x, atol=1e-5)


def test_sampler_deterministic_under_seed_and_zero_boot_noise():
    sch = Schedule()
    w = torch.randn(8, 8, generator=torch.Generator().manual_seed(3))

    def den(x, t):
        return torch.tanh(x @ w) * (1 + t[:, None])

    x1 = torch.randn(2, 8, generator=torch.Generator().manual_seed(4))
    a = bridge_sample(den, x1, sch, 4, torch.Generator().manual_seed(7))
    b = bridge_sample(den, x1, sch, 4, torch.Generator().manual_seed(7))
    c = bridge_sample(den, x1, sch, 4, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = bridge_sample(den, x1, sch, 4, torch.Generator().manual_seed(7), boot_noise=False)
    e = bridge_sample(den, x1, sch, 4, torch.Generator().manual_seed(8), boot_noise=False)
    assert torch.equal(d, e)
    with pytest.raises(ValueError):
        bridge_sample(den, x1, sch, 0)
