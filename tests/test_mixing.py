"""The mixing core: agreement with torchvision and timm, properties, and bad input."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mixuplib as m
from mixuplib.manifold import ManifoldMixup
from mixuplib.peers import use_lambda

B, K = 16, 10


def batch(seed=0, shape=(B, 3, 32, 32)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.randint(0, K, (shape[0],), generator=g)


def roll_index(n):
    """torchvision pairs example i with i - 1: ``x.roll(1, 0)[i] == x[i - 1]``."""
    return torch.arange(n).roll(1)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.97, 1.0])
def test_mixup_matches_torchvision(lam):
    from torchvision.transforms import v2

    x, y = batch()
    tv = v2.MixUp(alpha=1.0, num_classes=K)
    use_lambda(tv, lam)
    tv_x, tv_y = tv(x.clone(), y.clone())
    ours = m.mixup(x, y, lam=lam, index=roll_index(B))
    torch.testing.assert_close(ours.x, tv_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(m.soft_targets(ours, K), tv_y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("lam,seed", [(0.2, 0), (0.5, 1), (0.8, 2), (0.99, 3)])
def test_cutmix_matches_torchvision(lam, seed):
    from torchvision.transforms import v2

    x, y = batch()
    tv = v2.CutMix(alpha=1.0, num_classes=K)
    use_lambda(tv, lam)
    torch.manual_seed(seed)  # torchvision draws the box centre from the global generator
    tv_x, tv_y = tv(x.clone(), y.clone())
    ours = m.cutmix(x, y, lam=lam, index=roll_index(B), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(ours.x, tv_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(m.soft_targets(ours, K), tv_y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixup_matches_timm(smoothing, monkeypatch):
    from timm.data import Mixup

    x, y = batch()
    lam = 0.37
    tm = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, label_smoothing=smoothing, num_classes=K)
    monkeypatch.setattr(tm, "_params_per_batch", lambda: (lam, False))
    tm_x, tm_y = tm(x.clone(), y.clone())
    ours = m.mixup(x, y, lam=lam, index=torch.arange(B).flip(0))  # timm pairs i with B - 1 - i
    torch.testing.assert_close(ours.x, tm_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(m.soft_targets(ours, K, label_smoothing=smoothing), tm_y, atol=1e-6, rtol=0)


def test_inputs_are_not_modified():
    x, y = batch()
    x0, y0 = x.clone(), y.clone()
    m.mixup(x, y, generator=torch.Generator().manual_seed(0))
    m.cutmix(x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_same_generator_state_same_batch():
    x, y = batch()
    a = m.mixup(x, y, generator=torch.Generator().manual_seed(7), per_sample=True)
    b = m.mixup(x, y, generator=torch.Generator().manual_seed(7), per_sample=True)
    assert torch.equal(a.x, b.x) and torch.equal(a.index, b.index) and torch.equal(a.lam, b.lam)


def test_library_leaves_global_rng_alone():
    x, y = batch()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    m.mixup(x, y, generator=torch.Generator().manual_seed(0))
    m.cutmix(x, y, generator=torch.Generator().manual_seed(0))
    m.sample_lambda(0.4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("shape", [(B, 7), (B, 5, 9), (B, 3, 8, 8), (B, 2, 3, 4, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_mixup_any_shape_and_dtype(shape, dtype):
    x, y = batch(shape=shape)
    x = x.to(dtype)
    out = m.mixup(x, y, lam=0.25, index=roll_index(B))
    assert out.x.shape == x.shape and out.x.dtype == dtype and out.lam.dtype == dtype
    expected = 0.25 * x.double() + 0.75 * x.double().roll(1, 0)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-6
    torch.testing.assert_close(out.x.double(), expected, atol=tol, rtol=0)


def test_per_sample_lambda():
    x, y = batch()
    lam = torch.linspace(0, 1, B)
    out = m.mixup(x, y, lam=lam, index=roll_index(B), per_sample=True)
    expected = lam.view(-1, 1, 1, 1) * x + (1 - lam.view(-1, 1, 1, 1)) * x.roll(1, 0)
    torch.testing.assert_close(out.x, expected, atol=1e-6, rtol=0)
    drawn = m.mixup(x, y, generator=torch.Generator().manual_seed(0), per_sample=True)
    assert drawn.lam.shape == (B,) and len(set(drawn.lam.tolist())) == B


def test_sample_lambda_distribution():
    g = torch.Generator().manual_seed(0)
    for alpha in (0.2, 1.0, 4.0):
        lam = m.sample_lambda(alpha, 20000, generator=g)
        assert lam.shape == (20000,) and lam.min() >= 0 and lam.max() <= 1
        assert abs(float(lam.mean()) - 0.5) < 0.02
        expected_var = 1 / (4 * (2 * alpha + 1))  # variance of Beta(a, a)
        assert abs(float(lam.var()) - expected_var) < 0.01
    assert m.sample_lambda(1.0).shape == ()


@pytest.mark.parametrize("alpha", [0.1, 0.2, 0.4, 1.0, 2.0, 8.0])
def test_sample_lambda_is_exactly_beta(alpha):
    """The draw is Beta(alpha, alpha) itself, not an approximation: its first four moments and
    a Kolmogorov-Smirnov test against scipy's Beta, on 40,000 draws. (At alpha = 0.1 about
    1 % of the mass lies within 1e-16 of 1, where float64 rounds it to 1 and scipy's CDF
    loses its accuracy: numpy's own Beta sampler fails the KS test there too, so only the
    moments are checked.)"""
    from scipy import stats

    lam = m.sample_lambda(alpha, 40000, generator=torch.Generator().manual_seed(1)).numpy()
    beta = stats.beta(alpha, alpha)
    if alpha >= 0.2:
        assert stats.kstest(lam, beta.cdf).pvalue > 1e-3
    for k in (1, 2, 3, 4):
        expected = beta.moment(k)
        stderr = ((beta.moment(2 * k) - expected**2) / len(lam)) ** 0.5
        assert abs((lam**k).mean() - expected) < 5 * stderr, (k, (lam**k).mean(), expected)


def test_sample_lambda_reproduces_and_draws_on_from_the_generator():
    a = m.sample_lambda(0.3, 5, generator=torch.Generator().manual_seed(7))
    b = m.sample_lambda(0.3, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.dtype == torch.float64
    g = torch.Generator().manual_seed(7)
    first, second = m.sample_lambda(0.3, generator=g), m.sample_lambda(0.3, generator=g)
    assert first.shape == () and not torch.equal(first, second)
    assert m.sample_lambda(1.0, (2, 3)).shape == (2, 3)


def test_mixup_is_a_draw_then_a_mix():
    """Drawing and applying are apart, as in torchvision: mixup with a generator is draw_mixing
    from that generator's state, then mix."""
    x, y = batch()
    for per_sample in (False, True):
        lam, index = m.draw_mixing(B, 0.4, per_sample=per_sample, generator=torch.Generator().manual_seed(5))
        assert lam.shape == ((B,) if per_sample else ()) and lam.dtype == torch.float64
        assert torch.equal(index.sort().values, torch.arange(B))
        drawn = m.mixup(x, y, 0.4, per_sample=per_sample, generator=torch.Generator().manual_seed(5))
        applied = m.mix(x, y, lam, index)
        assert torch.equal(drawn.x, applied.x) and torch.equal(drawn.index, index) and torch.equal(drawn.lam, applied.lam)


def test_values_are_checked_where_the_caller_passes_them_in():
    """mixup and cutmix check a given lam and index; mix, which methods call with their own
    draws, takes them as given (a check of a CUDA tensor would stall the GPU every step)."""
    x, y = batch()
    bad_index = torch.zeros(B, dtype=torch.long)
    out = m.mix(x, y, torch.tensor(0.3), bad_index)  # the caller's word is taken
    assert torch.equal(out.x, torch.lerp(x[:1].expand_as(x), x, 0.3))
    with pytest.raises(ValueError, match="index must be a permutation"):
        m.mixup(x, y, lam=0.3, index=bad_index)
    with pytest.raises(ValueError, match="index must be a permutation"):
        m.cutmix(x, y, lam=0.3, index=bad_index)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        m.mixup(x, y, lam=torch.full((B,), 2.0), index=roll_index(B), per_sample=True)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        m.cutmix(x, y, lam=1.5)
    # shapes are checked everywhere
    with pytest.raises(ValueError, match=r"lam must have shape \(16,\)"):
        m.mixup(x, y, lam=0.5, per_sample=True)
    with pytest.raises(ValueError, match="index must be an integer tensor of shape"):
        m.mixup(x, y, index=torch.arange(B - 1))
    with pytest.raises(ValueError, match=r"lam must be a tensor of shape \(\) or \(16,\)"):
        m.mix(x, y, torch.full((3,), 0.5), roll_index(B))
    with pytest.raises(ValueError, match="index must be an integer tensor of shape"):
        m.mix(x, y, torch.tensor(0.5), torch.arange(B - 1))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        m.draw_mixing(0, 1.0)


def test_cutmix_lambda_is_the_box_area():
    x, y = batch()
    out = m.cutmix(x, y, generator=torch.Generator().manual_seed(3))
    own = (out.x == x).all(dim=1).float().mean(dim=(1, 2))  # pixels still from the example itself
    changed = out.index != torch.arange(B)
    torch.testing.assert_close(own[changed], out.lam.expand(int(changed.sum())), atol=1e-6, rtol=0)


@settings(max_examples=60, deadline=None)
@given(lam=st.floats(0, 1), seed=st.integers(0, 2**31 - 1), per_sample=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]))
def test_soft_targets_are_distributions(lam, seed, per_sample, smoothing):
    x, y = batch(seed, shape=(8, 4))
    g = torch.Generator().manual_seed(seed)
    lam_arg = torch.full((8,), lam) if per_sample else lam
    t = m.soft_targets(m.mixup(x, y, lam=lam_arg, generator=g, per_sample=per_sample), K, smoothing)
    assert t.shape == (8, K) and bool((t >= 0).all())
    torch.testing.assert_close(t.sum(dim=1), torch.ones(8), atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12))
def test_lambda_one_is_identity(seed, n):
    x, y = batch(seed, shape=(n, 3, 4, 4))
    out = m.mixup(x, y, lam=1.0, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(out.x, x)
    assert torch.equal(m.soft_targets(out, K), torch.nn.functional.one_hot(y, K).float())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), per_sample=st.booleans(), smoothing=st.sampled_from([0.0, 0.2]))
def test_two_term_loss_equals_soft_cross_entropy(seed, per_sample, smoothing):
    g = torch.Generator().manual_seed(seed)
    x, y = batch(seed, shape=(8, 5))
    mixed = m.mixup(x.double(), y, generator=g, per_sample=per_sample)
    logits = torch.randn(8, K, generator=g, dtype=torch.float64)
    la, lb = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    two_term = m.mixup_cross_entropy(la, mixed, label_smoothing=smoothing)
    soft = m.soft_cross_entropy(lb, m.soft_targets(mixed, K, smoothing))
    two_term.backward()
    soft.backward()
    torch.testing.assert_close(two_term, soft, atol=1e-10, rtol=0)
    torch.testing.assert_close(la.grad, lb.grad, atol=1e-10, rtol=0)


def test_softmax_bce_is_torchs_bce_on_softmax_and_linear_in_its_target():
    # The official manifold mixup code: nn.BCELoss()(softmax(output), reweighted_target), the peer here.
    from mixuplib.losses import label_loss, mixup_loss, softmax_bce
    g = torch.Generator().manual_seed(0)
    x, y = batch(0, shape=(8, 5))
    logits = torch.randn(8, K, generator=g)
    mixed = m.mixup(x, y, generator=g, per_sample=True)
    targets = m.soft_targets(mixed, K)
    peer = torch.nn.BCELoss()(torch.softmax(logits, 1), targets)
    torch.testing.assert_close(softmax_bce(logits, targets), peer)
    torch.testing.assert_close(mixup_loss(logits, mixed, "softmax_bce"), peer)
    # Linear in the target: the two-term form gives the same value.
    one_hot = lambda labels: torch.nn.functional.one_hot(labels, K).float()  # noqa: E731
    per_example = lambda t: torch.nn.functional.binary_cross_entropy(torch.softmax(logits, 1), t, reduction="none").mean(1)  # noqa: E731
    two_term = (mixed.lam * per_example(one_hot(mixed.y_a)) + (1 - mixed.lam) * per_example(one_hot(mixed.y_b))).mean()
    torch.testing.assert_close(mixup_loss(logits, mixed, "softmax_bce"), two_term)
    torch.testing.assert_close(label_loss(logits, y, "softmax_bce"), torch.nn.BCELoss()(torch.softmax(logits, 1), one_hot(y)))
    torch.testing.assert_close(label_loss(logits, y), torch.nn.functional.cross_entropy(logits, y))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # torch refuses BCE under autocast; softmax_bce steps out of it
        assert softmax_bce(logits, targets).dtype == torch.float32
    with pytest.raises(ValueError, match="criterion must be one of \\['cross_entropy', 'softmax_bce'\\], got 'mse'"):
        mixup_loss(logits, mixed, "mse")
    for make in (lambda: m.ERM(criterion="bce"), lambda: m.InputMixup(1.0, criterion="bce"),
                 lambda: ManifoldMixup(2.0, criterion="bce")):
        with pytest.raises(ValueError, match="criterion must be one of"):
            make()


@pytest.mark.parametrize("alpha", [0, -1.0, float("nan"), float("inf"), "1", True, None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha must be a finite number > 0"):
        m.sample_lambda(alpha)
    x, y = batch()
    with pytest.raises(ValueError, match="alpha"):
        m.mixup(x, y, alpha)
    with pytest.raises(ValueError, match="alpha"):
        m.cutmix(x, y, alpha)
    with pytest.raises(ValueError, match="alpha"):
        m.InputMixup(alpha)


@pytest.mark.parametrize("fn", [m.mixup, m.cutmix])
def test_bad_batches(fn):
    x, y = batch()
    with pytest.raises(ValueError, match="same batch size, got x: 16 and y: 15"):
        fn(x, y[:15])
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        fn((x * 255).to(torch.uint8), y)
    with pytest.raises(TypeError, match="integer class indices"):
        fn(x, y.float())
    with pytest.raises(ValueError, match="y must be a tensor of class indices"):
        fn(x, y.view(B, 1, 1))
    with pytest.raises(ValueError, match="index must be an integer tensor of shape"):
        fn(x, y, index=torch.arange(B - 1))
    with pytest.raises(ValueError, match="index must be a permutation"):
        fn(x, y, index=torch.zeros(B, dtype=torch.long))
    for lam in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
            fn(x, y, lam=lam)


def test_bad_shapes_for_cutmix_and_per_sample_lam():
    x, y = batch(shape=(B, 10))
    with pytest.raises(ValueError, match=r"x must be images of shape \(B, C, H, W\)"):
        m.cutmix(x, y)
    with pytest.raises(ValueError, match=r"lam must have shape \(16,\)"):
        m.mixup(x, y, lam=0.5, per_sample=True)


def test_bad_labels_and_targets():
    x, y = batch(shape=(B, 4))
    mixed = m.mixup(x, y, lam=0.5, index=roll_index(B))
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\] for num_classes=5"):
        m.soft_targets(mixed, 5)
    with pytest.raises(ValueError, match=r"batch.y_a must hold class indices in \[0, 4\]"):
        m.mixup_cross_entropy(torch.randn(B, 5), mixed)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        m.soft_targets(mixed, 0)
    with pytest.raises(ValueError, match=r"label_smoothing must lie in \[0, 1\]"):
        m.soft_targets(mixed, K, label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"logits and targets must both have shape \(B, K\)"):
        m.soft_cross_entropy(torch.randn(B, K), torch.rand(B, K + 1))
    with pytest.raises(ValueError, match=r"logits must have shape \(B, K\) with B=16"):
        m.mixup_cross_entropy(torch.randn(B - 1, K), mixed)


def test_soft_labels_can_be_mixed():
    x, _ = batch(shape=(B, 4))
    probs = torch.softmax(torch.randn(B, K), dim=1)
    out = m.mixup(x, probs, lam=0.3, index=roll_index(B))
    expected = 0.3 * probs + 0.7 * probs.roll(1, 0)
    torch.testing.assert_close(m.soft_targets(out, K), expected, atol=1e-6, rtol=0)
    assert math.isfinite(float(m.mixup_cross_entropy(torch.randn(B, K), out)))


def test_a_given_lambda_keeps_its_precision():
    """A caller's lam is not rounded to float32 on the way: float64 inputs mix at exactly it."""
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.arange(4)
    index = torch.tensor([1, 2, 3, 0])
    lam = 0.123456789012345
    out = m.mixup(x, y, lam=lam, index=index)
    assert out.lam.dtype == torch.float64 and float(out.lam) == lam
    torch.testing.assert_close(out.x, lam * x + (1 - lam) * x[index], rtol=0, atol=1e-15)
    per_sample = torch.tensor([0.1, 0.2, 0.3, 0.123456789012345], dtype=torch.float64)
    out = m.mixup(x, y, lam=per_sample, index=index, per_sample=True)
    assert torch.equal(out.lam, per_sample)
