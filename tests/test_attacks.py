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


def test_pixel_units_convert_budgets_and_bounds_channel_by_channel():
    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    units = attacks.PixelUnits(mean, std)
    budget = units.budget(8 / 255)
    assert budget.shape == (3, 1, 1) and budget.dtype == torch.float32
    torch.testing.assert_close(budget.flatten(), torch.tensor([8 / 255 / s for s in std]))
    low, high = units.bounds
    torch.testing.assert_close(low.flatten(), torch.tensor([-m / s for m, s in zip(mean, std)]))
    torch.testing.assert_close(units.to_pixels(high.expand(3, 2, 2)), torch.ones(3, 2, 2))
    # The chain rule: d loss / d pixel = (d loss / d x) / std, checked by autograd through the standardisation.
    pixels = torch.rand(3, 2, 2, requires_grad=True)
    x = ((pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).detach().requires_grad_(True)
    weights = torch.randn(3, 2, 2)
    (by_pixels,) = torch.autograd.grad((weights * (pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)).sum(), pixels)
    (by_inputs,) = torch.autograd.grad((weights * x).sum(), x)
    torch.testing.assert_close(units.pixel_gradient(by_inputs), by_pixels)
    # One number for every channel is plain float arithmetic, the same bytes as writing it out by hand.
    one = attacks.PixelUnits(0.2860, 0.3530)
    assert one.budget(0.1) == 0.1 / 0.3530 and one.bounds == ((0 - 0.2860) / 0.3530, (1 - 0.2860) / 0.3530)


@pytest.mark.parametrize("attack", ["fgsm", "ifgsm", "pgd"])
def test_per_channel_budgets_and_bounds_hold_in_every_channel(attack):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    units = attacks.PixelUnits([0.2, 0.5, 0.8], [0.1, 0.2, 0.4])
    g = torch.Generator().manual_seed(1)
    pixels = torch.rand(16, 3, 4, 4, generator=g)
    x, y = (pixels - torch.tensor([0.2, 0.5, 0.8]).view(3, 1, 1)) / torch.tensor([0.1, 0.2, 0.4]).view(3, 1, 1), torch.randint(0, 2, (16,), generator=g)
    eps = units.budget(0.05)
    if attack == "fgsm":
        adv = attacks.fgsm(model, x, y, eps, bounds=units.bounds)
    else:
        adv = attacks.ifgsm(model, x, y, eps, steps=5, bounds=units.bounds, random_start=attack == "pgd", generator=g)
    moved = units.to_pixels(adv) - pixels
    assert float(moved.abs().max()) <= 0.05 + 1e-6  # the same 0.05 pixels in every channel
    assert float(units.to_pixels(adv).min()) >= -1e-6 and float(units.to_pixels(adv).max()) <= 1 + 1e-6
    assert moved.abs().amax(dim=(0, 2, 3)).min() > 0.04  # every channel was used


def test_pixel_units_refuse_bad_statistics_by_name():
    with pytest.raises(ValueError, match=r"std must be > 0, got \[0.2, 0.0\]"):
        attacks.PixelUnits([0.1, 0.1], [0.2, 0.0])
    with pytest.raises(ValueError, match="one number per channel each, got 3 and 2"):
        attacks.PixelUnits([0.1, 0.1, 0.1], [0.2, 0.2])
    with pytest.raises(TypeError, match="mean must be a number or a list of numbers"):
        attacks.PixelUnits("red", 0.2)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.fgsm(torch.nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), torch.tensor([0.1, -0.1]))


def test_adversarial_training_trains_on_pgd_examples_crafted_in_eval_mode():
    from mixuplib import models
    from mixuplib.adversarial_training import AdversarialTraining

    torch.manual_seed(0)
    net = models.small_cnn(1, 3, width=2, image_size=8)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    method = AdversarialTraining(0.1, steps=3, bounds=(-2.0, 2.0))
    stats = [b.clone() for b in net.buffers()]
    net.train()
    loss = method.loss(net, x, y, torch.Generator().manual_seed(5))
    assert net.training and loss.requires_grad
    # The same PGD by hand, in eval mode with the same generator, then one training pass on its examples.
    twin = models.small_cnn(1, 3, width=2, image_size=8)
    twin.load_state_dict(dict(zip(twin.state_dict(), [*net.state_dict().values()])))
    for b, s in zip(twin.buffers(), stats):
        b.copy_(s)
    adv = attacks.ifgsm(twin.eval(), x, y, 0.1, steps=3, bounds=(-2.0, 2.0), random_start=True,
                        generator=torch.Generator().manual_seed(5))
    expected = torch.nn.functional.cross_entropy(twin.train()(adv), y)
    torch.testing.assert_close(loss, expected)
    # Only the training pass moved the batch-norm statistics: once, like the twin's one pass.
    for a, b in zip(net.buffers(), twin.buffers()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        AdversarialTraining(0.1, steps=0)
