"""FGSM and I-FGSM, checked against a linear model, where the worst case is known in closed form."""

import pytest
import torch

from mixuplib import attacks


def linear_model(seed=0, d=6):
    torch.manual_seed(seed)
    model = torch.nn.Linear(d, 2).double()
    return model


def margin(model, x, y):
    logits = model(x)
    return logits.gather(1, y[:, None]).squeeze(1) - logits.gather(1, (1 - y)[:, None]).squeeze(1)


def test_fgsm_on_a_linear_model_is_the_closed_form_worst_case():
    # For two classes the margin is (w_y - w_other) . x + const: within |delta|_inf <= eps it is
    # minimised exactly by delta = -eps * sign(w_y - w_other), lowering it by eps * |w_y - w_other|_1.
    model = linear_model()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (32,), generator=g)
    eps = 0.1
    w = model.weight.detach()
    direction = w[y] - w[1 - y]
    expected = x - eps * direction.sign()
    adv = attacks.fgsm(model, x, y, eps)
    torch.testing.assert_close(adv, expected)
    drop = margin(model, x, y) - margin(model, adv, y)
    torch.testing.assert_close(drop, eps * direction.abs().sum(1))


@pytest.mark.parametrize("random_start", [False, True])
def test_ifgsm_reaches_the_same_corner_and_stays_in_the_ball(random_start):
    model = linear_model(2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (16,), generator=g)
    eps = 0.2
    adv = attacks.ifgsm(model, x, y, eps, steps=10, random_start=random_start, generator=g)
    assert float((adv - x).abs().max()) <= eps + 1e-12
    w = model.weight.detach()
    torch.testing.assert_close(adv, x - eps * (w[y] - w[1 - y]).sign())  # the optimum of the ball


def test_bounds_are_respected_and_inputs_untouched():
    model = linear_model()
    x = torch.rand(8, 6, dtype=torch.float64)
    y = torch.zeros(8, dtype=torch.long)
    x0 = x.clone()
    for adv in (attacks.fgsm(model, x, y, 0.5, bounds=(0.0, 1.0)), attacks.ifgsm(model, x, y, 0.5, bounds=(0.0, 1.0))):
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0 and not adv.requires_grad
    assert torch.equal(x, x0)


def test_attack_raises_error_of_a_trained_classifier():
    torch.manual_seed(0)
    x = torch.randn(200, 2)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    clean = attacks.adversarial_error(model, x, y)
    weak = attacks.adversarial_error(model, attacks.fgsm(model, x, y, 0.3), y)
    strong = attacks.adversarial_error(model, attacks.ifgsm(model, x, y, 0.3), y)
    assert clean < 5 and weak > clean and strong >= weak - 1


def test_bad_input():
    model = linear_model()
    x, y = torch.zeros(4, 6, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.fgsm(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r"y must have shape \(4,\)"):
        attacks.ifgsm(model, x, y[:3], 0.1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        attacks.ifgsm(model, x, y, 0.1, steps=0)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        attacks.fgsm(model, x.long(), y, 0.1)
