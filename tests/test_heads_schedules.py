"""Mean / std schedules: boundary values, reference points and monotonicity."""
import torch
import pytest

from c2ser.heads.schedules import Schedule, bridge_std, linear_mean, logistic_mean


def test_logistic_mean_boundaries_and_reference_points():
    t = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], dtype=torch.float64)
    m = logistic_mean(t, k=10.0, t_c=0.5)
    assert m[0] == pytest.approx(0.0, abs=1e-12) and m[-1] == pytest.approx(1.0, abs=1e-12)
    # spec gen_ser.md §1.1 table (3 decimals)
    assert m.tolist() == pytest.approx([0, 0.011, 0.07, 0.5, 0.93, 0.989, 1], abs=6e-4)


@pytest.mark.parametrize("k,t_c", [(10.0, 0.5), (5.0, 0.3), (20.0, 0.7)])
def test_logistic_mean_monotone(k, t_c):
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    m = logistic_mean(t, k, t_c)
    assert torch.all(m[1:] > m[:-1])
    assert float(m[0]) == pytest.approx(0.0, abs=1e-12) and float(m[-1]) == pytest.approx(1.0, abs=1e-12)


def test_linear_mean_is_identity():
    t = torch.rand(10)
    assert torch.equal(linear_mean(t), t)


def test_bridge_std_boundaries_and_shape():
    t = torch.tensor([0.0, 0.5, 1.0, 0.2, 0.8])
    s = bridge_std(t, sigma_max=0.7)
    assert s[:3].tolist() == pytest.approx([0.0, 0.7, 0.0])
    assert float(s[3]) == pytest.approx(float(s[4]))  # symmetric
    u = torch.linspace(0, 0.5, 101)
    assert torch.all(bridge_std(u, 0.5)[1:] > bridge_std(u, 0.5)[:-1])


def test_schedule_mu_broadcasts_per_item():
    sch = Schedule("linear")
    x0, x1 = torch.zeros(3, 4), torch.ones(3, 4)
    mu = sch.mu(torch.tensor([0.0, 0.5, 1.0]), x0, x1)
    assert mu[:, 0].tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="unknown mean schedule"):
        Schedule("cubic")
