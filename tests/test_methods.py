"""Manifold mixup and AdaMixup: the stage-wise mixing, the policy region, the discriminator."""

import pytest
import torch

import mixuplib as mx
from mixuplib import adamixup as am
from mixuplib import models
from mixuplib.manifold import ManifoldMixup, check_layers, mix_at_layer


def batch(n=8, shape=(1, 28, 28), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("build,shape", [(lambda: models.small_cnn(1, 10, width=4), (1, 28, 28)),
                                         (lambda: models.preact_resnet18(10), (3, 32, 32)),
                                         (lambda: models.mlp(12, 10, (16, 16)), (12,))])
def test_layer_zero_is_input_mixup(build, shape):
    torch.manual_seed(0)
    net = build().eval()
    x, y = batch(shape=shape)
    index = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    logits, mixed = mix_at_layer(net, x, y, 0, lam=0.3, index=index)
    reference = mx.mixup(x, y, lam=0.3, index=index)
    assert torch.equal(logits, net(reference.x))
    assert torch.equal(mixed.x, reference.x) and torch.equal(mixed.y_b, reference.y_b)


def test_mixing_a_hidden_layer_is_the_convex_combination_of_hidden_states():
    torch.manual_seed(0)
    net = models.small_cnn(1, 10, width=4).eval()
    x, y = batch()
    index = torch.arange(8).flip(0)
    logits, mixed = mix_at_layer(net, x, y, 2, lam=0.25, index=index)
    hidden = net[:2](x)
    expected = 0.25 * hidden + 0.75 * hidden[index]
    torch.testing.assert_close(mixed.x, expected)
    torch.testing.assert_close(logits, net[2:](expected))


def test_manifold_mixup_draws_every_eligible_layer_and_trains(monkeypatch):
    from mixuplib import manifold

    drawn = []
    real = manifold.mix_at_layer
    monkeypatch.setattr(manifold, "mix_at_layer", lambda model, x, y, layer, *a, **k: (drawn.append(layer), real(model, x, y, layer, *a, **k))[1])
    net = models.small_cnn(1, 10, width=4)
    method = ManifoldMixup(2.0, (0, 2, 3))
    g = torch.Generator().manual_seed(0)
    x, y = batch(16)
    for _ in range(90):
        method.loss(net, x, y, g).backward()
    counts = [drawn.count(k) for k in (0, 1, 2, 3)]
    assert counts[1] == 0 and all(15 <= c <= 45 for c in (counts[0], counts[2], counts[3])), counts
    assert all(p.grad is not None for p in net.parameters())


def test_bad_layers():
    net = models.small_cnn(1, 10, width=4)
    for layers in ([], [4], [-1], [True], [0.5]):
        with pytest.raises(ValueError, match=r"layers must be a non-empty set of ints in \[0, 3\]"):
            check_layers(layers, net)
    with pytest.raises(ValueError, match="layers"):
        ManifoldMixup(2.0, (0, 7)).loss(net, *batch(), torch.Generator())
    with pytest.raises(ValueError, match="alpha"):
        ManifoldMixup(-1.0)


def policy(seed=0):
    torch.manual_seed(seed)
    return am.PolicyRegionGenerator(am.small_policy_body(1, 16), 16)


def test_policy_region_and_lambda_range():
    gen = policy()
    x, _ = batch(64)
    alpha, delta = gen(x, x.flip(0))
    assert alpha.shape == delta.shape == (64,)
    assert bool((alpha >= 0).all() and (delta >= 0).all() and (alpha + delta <= 1 + 1e-6).all())
    lam = am.PolicyRegionGenerator.draw_lambda(alpha, delta, torch.Generator().manual_seed(0))
    assert bool((lam >= alpha - 1e-7).all() and (lam <= alpha + delta + 1e-6).all())
    assert bool((lam >= 0).all() and (lam <= 1).all())
    lam.sum().backward()  # lambda is differentiable in the generator's parameters
    assert gen.region.weight.grad is not None and float(gen.region.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="x and partner must have the same shape"):
        gen(x, x[:10])


def test_intrusion_labels_and_discriminator_inputs(monkeypatch):
    assert am.intrusion_labels(3, 2, 2).tolist() == [1, 1, 1, 1, 1, 0, 0]
    net = models.small_cnn(1, 10, width=4)
    captured = {}

    class Recording(am.IntrusionDiscriminator):
        def forward(self, features):
            captured["features"] = features
            return super().forward(features)

    real_mix = am.mix
    monkeypatch.setattr(am, "mix", lambda *a, **k: captured.setdefault("batch", real_mix(*a, **k)))
    method = am.AdaMixup(policy(), Recording(128))
    x, y = batch(10)
    loss = method.loss(net, x, y, torch.Generator().manual_seed(0))
    net.eval()  # compare features without batch-norm batch statistics
    features = captured["features"]
    assert features.shape == (15, 128)  # 5 unseen + 5 originals + 5 mixes
    net.train()
    whole = captured["batch"]  # the official pairing mixes over the whole batch; the first half's mixes are used
    trunk = net[:-1](torch.cat([x[:5], whole.x[:5], x[5:]]))
    torch.testing.assert_close(features, torch.cat([trunk[10:], trunk[:5], trunk[5:10]]))
    assert whole.lam.shape == (10,) and bool((whole.lam[5:] == 1).all()) and loss.requires_grad
    torch.testing.assert_close(whole.x[5:], x[5:])  # the unseen half itself is never mixed


def test_adamixup_pairs_over_the_whole_batch_as_the_official_code_does(monkeypatch):
    # One permutation of all B examples before the split: a mixed example's partner may be an unseen one.
    net = models.small_cnn(1, 10, width=4)
    drawn = []
    real_mix = am.mix
    monkeypatch.setattr(am, "mix", lambda *a, **k: drawn.append(real_mix(*a, **k)) or drawn[-1])
    method = am.AdaMixup(policy(), am.IntrusionDiscriminator(128))
    x, y = batch(16)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        method.loss(net, x, y, g)
    partners = torch.cat([b.index[:8] for b in drawn])
    assert all(sorted(b.index.tolist()) == list(range(16)) for b in drawn), "a permutation of the whole batch"
    assert bool((partners >= 8).any()) and bool((partners < 8).any()), "partners from both halves"
    mixed = drawn[-1]
    lam = mixed.lam[:8].view(-1, 1, 1, 1)
    torch.testing.assert_close(mixed.x[:8], lam * x[:8] + (1 - lam) * x[mixed.index[:8]])
    assert torch.equal(mixed.y_b[:8], y[mixed.index[:8]])


def test_adamixup_trains_all_three_parts_and_reports_its_region():
    net = models.small_cnn(1, 10, width=4)
    method = am.AdaMixup(policy(), am.IntrusionDiscriminator(128))
    x, y = batch(16)
    method.loss(net, x, y, torch.Generator().manual_seed(0)).backward()
    for part in (net, method.policy, method.discriminator):
        assert all(p.grad is not None for p in part.parameters())
    region = method.epoch_end(1)
    assert set(region) == {"region_alpha", "region_delta", "lambda_minor", "loss_classify", "loss_intrusion",
                           "discriminator_accuracy"} and 0 <= region["region_alpha"] <= 1
    assert region["loss_classify"] > 0 and region["loss_intrusion"] > 0 and 0 <= region["discriminator_accuracy"] <= 1
    assert 0 <= region["lambda_minor"] <= 0.5
    assert method.epoch_end(2) == {}
    with pytest.raises(ValueError, match="at least 4 examples"):
        method.loss(net, *batch(3), torch.Generator())


def test_half_batch_trains_its_method_on_the_first_half_only():
    net = models.small_cnn(1, 10, width=4)
    x, y = batch(10)
    half = am.HalfBatch(mx.ERM())
    torch.manual_seed(0)
    net.eval()  # batch-norm statistics of the batch it sees would differ otherwise
    assert torch.equal(half.loss(net, x, y, torch.Generator()), mx.ERM().loss(net, x[:5], y[:5], torch.Generator()))
    assert torch.equal(half.loss(net, x, y, torch.Generator()), half.loss(net, torch.cat([x[:5], x[5:] * 0]), y,
                                                                           torch.Generator())), "the second half is unused"
    with pytest.raises(TypeError, match="method must be a mixuplib Method"):
        am.HalfBatch("erm")
    with pytest.raises(ValueError, match="at least 2 examples"):
        half.loss(net, x[:1], y[:1], torch.Generator())
