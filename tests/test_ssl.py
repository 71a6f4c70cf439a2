"""ICT and MixMatch: sharpening, the ramps, the moving averages, and one training step each."""

import copy

import pytest
import torch

from mixuplib import data, models
from mixuplib.batches import random_crop_flip
from mixuplib import ssl


def test_sharpen():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(16, 5, generator=g), dim=1)
    sharp = ssl.sharpen(p, 0.5)
    torch.testing.assert_close(sharp.sum(1), torch.ones(16))
    assert torch.equal(sharp.argmax(1), p.argmax(1))
    entropy = lambda q: -(q * q.log()).sum(1)  # noqa: E731
    assert bool((entropy(sharp) <= entropy(p) + 1e-6).all())
    torch.testing.assert_close(ssl.sharpen(p, 1.0), p)
    for t in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match=r"temperature must lie in \(0, 1\]"):
            ssl.sharpen(p, t)


def test_rampup_goes_from_small_to_one():
    assert ssl.rampup(0, 100) == pytest.approx(0.006737947)
    assert ssl.rampup(100, 100) == 1.0 and ssl.rampup(500, 100) == 1.0 and ssl.rampup(5, 0) == 1.0
    assert ssl.rampup(30, 100) < ssl.rampup(60, 100)


def test_linear_rampup_is_the_clipped_fraction_of_the_ramp():
    assert [ssl.linear_rampup(s, 4) for s in (-1, 0, 1, 2, 4, 9)] == [0.0, 0.0, 0.25, 0.5, 1.0, 1.0]
    assert ssl.linear_rampup(3, 0) == 1.0


@pytest.mark.parametrize("buffers", [False, True])
def test_ema_update_averages_parameters_and_buffers_only_when_asked(buffers):
    torch.manual_seed(0)
    average, model = models.small_cnn(1, 3, width=2, image_size=8), models.small_cnn(1, 3, width=2, image_size=8)
    with torch.no_grad():
        for b in model.buffers():
            b.add_(3)
    before = copy.deepcopy(average)
    ssl.ema_update(average, model, 0.75, buffers=buffers)
    for a, old, m in zip(average.parameters(), before.parameters(), model.parameters()):
        torch.testing.assert_close(a, 0.75 * old + 0.25 * m)
    for (name, a), old, m in zip(average.named_buffers(), before.buffers(), model.buffers()):
        if not buffers:
            assert torch.equal(a, old), name
        elif a.is_floating_point():
            torch.testing.assert_close(a, 0.75 * old + 0.25 * m)
        else:
            assert torch.equal(a, m), name  # counters are copied
    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\]"):
        ssl.ema_update(average, model, 1.5, buffers=buffers)


def step(method, net, x, y, seed=0):
    loss = method.loss(net, x, y, torch.Generator().manual_seed(seed))
    loss.backward()
    return loss


def small():
    torch.manual_seed(0)
    net = models.small_cnn(1, 10, width=4)
    g = torch.Generator().manual_seed(1)
    return net, torch.randn(200, 1, 28, 28, generator=g), torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)


def test_ict_teacher_starts_as_the_student_then_averages():
    net, unlabeled, x, y = small()
    teacher = models.small_cnn(1, 10, width=4)
    method = ssl.ICT(unlabeled, teacher, batch_size=16, ema=0.9)
    loss = step(method, net, x, y)
    assert loss.requires_grad and all(p.grad is not None for p in net.parameters())
    assert all(p.grad is None for p in method.teacher.parameters())
    before = copy.deepcopy(dict(net.named_parameters()))
    for name, t in method.teacher.named_parameters():
        assert torch.equal(t, before[name])  # first step: the teacher is the student (batch-norm statistics move on)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # as if the optimiser moved the student
    teacher_buffers = copy.deepcopy(list(method.teacher.buffers()))
    step(method, net, x, y, seed=1)
    weight = dict(method.teacher.named_parameters())["stage1.0.weight"]
    # After one optimiser step the warmed-up decay is min(1 - 1/2, 0.9) = 0.5: 0.5 * old + 0.5 * (old + 1).
    torch.testing.assert_close(weight, before["stage1.0.weight"] + 0.5)
    assert method.step == 2 and method.state_dict()["_extra_state"] == {"step": 2}
    # The teacher's batch-norm statistics are its own: its forward pass moved them, the student's did not reach them.
    moved = [not torch.equal(a, b) for a, b in zip(method.teacher.buffers(), teacher_buffers)]
    student = [torch.equal(a, b) for a, b in zip(method.teacher.buffers(), net.buffers())]
    assert any(moved) and not all(student)
    for t in (5, 100, 10_000):
        method.step = t
        before_t = dict(method.teacher.named_parameters())["stage1.0.weight"].clone()
        method._update_teacher(net)
        decay = min(1 - 1 / (t + 1), 0.9)
        torch.testing.assert_close(dict(method.teacher.named_parameters())["stage1.0.weight"],
                                   decay * before_t + (1 - decay) * dict(net.named_parameters())["stage1.0.weight"])
    assert method.readouts() == {"teacher": method.teacher}


def test_ict_consistency_is_the_official_mean_over_examples_and_classes(monkeypatch):
    """With weight w the loss is CE + w * sum((p - q)^2) / (B K), so w = 100 is the official command's 100."""
    net, unlabeled, x, y = small()
    seen = {}
    real_mse = ssl.F.mse_loss
    monkeypatch.setattr(ssl.F, "mse_loss", lambda a, b, **k: seen.setdefault("value", ((a - b) ** 2).sum() / a.numel()))
    method = ssl.ICT(unlabeled, copy.deepcopy(net), batch_size=16, weight=100.0, rampup_steps=0)
    loss = method.loss(net, x, y, torch.Generator().manual_seed(0))
    monkeypatch.setattr(ssl.F, "mse_loss", real_mse)
    ce = ssl.F.cross_entropy(net(x), y)
    torch.testing.assert_close(loss, ce + 100.0 * seen["value"])


def test_ict_supervised_mixup_mixes_the_labelled_batch(monkeypatch):
    net, unlabeled, x, y = small()
    calls = []
    real_mixup = ssl.mixup
    monkeypatch.setattr(ssl, "mixup", lambda v, t, alpha, **k: calls.append((v.shape[0], alpha)) or real_mixup(v, t, alpha, **k))
    ssl.ICT(unlabeled, copy.deepcopy(net), batch_size=16, alpha=1.0, sup_alpha=0.5).loss(net, x, y, torch.Generator().manual_seed(0))
    assert calls == [(16, 1.0), (8, 0.5)]  # the unlabelled mix, then the labelled one
    calls.clear()
    ssl.ICT(unlabeled, copy.deepcopy(net), batch_size=16).loss(net, x, y, torch.Generator().manual_seed(0))
    assert calls == [(16, 1.0)]


def test_mixmatch_step_and_its_mixing_weight(monkeypatch):
    net, unlabeled, x, y = small()
    seen = {}
    for name in ("mix", "mixup"):  # one lambda per example (the official code's) mixes through mix, one per batch through mixup
        real = getattr(ssl, name)
        monkeypatch.setattr(ssl, name, lambda *a, real=real, name=name, **k: seen.setdefault(name, real(*a, **k)))
    crop = lambda v, g: random_crop_flip(v, g, padding=2)  # noqa: E731
    loss = step(ssl.MixMatch(unlabeled, crop, 10, k=2, batch_size=16), net, x, y)
    assert loss.requires_grad and all(p.grad is not None for p in net.parameters())
    batch = seen["mix"]
    assert batch.x.shape == (8 + 2 * 16, 1, 28, 28) and batch.lam.shape == (40,) and bool((batch.lam >= 0.5).all())
    assert len(set(batch.lam.tolist())) > 1
    torch.testing.assert_close(batch.y_a[8:].sum(1), torch.ones(32))  # guessed labels are distributions
    step(ssl.MixMatch(unlabeled, crop, 10, k=2, batch_size=16, per_example=False), net, x, y)
    assert seen["mixup"].lam.dim() == 0 and float(seen["mixup"].lam) >= 0.5


def test_mixmatch_augments_the_labelled_batch_only_when_asked():
    net, unlabeled, x, y = small()
    seen = []
    augment = lambda v, g: seen.append(v.shape[0]) or v  # noqa: E731
    for augment_labelled, calls in ((True, [16, 16, 8]), (False, [16, 16])):
        seen.clear()
        ssl.MixMatch(unlabeled, augment, 10, k=2, batch_size=16, augment_labelled=augment_labelled).loss(
            net, x, y, torch.Generator().manual_seed(0))
        assert seen == calls


def test_mixmatch_average_starts_as_the_student_and_is_its_readout():
    net, unlabeled, x, y = small()
    average = models.small_cnn(1, 10, width=4)
    method = ssl.MixMatch(unlabeled, lambda v, g: v, 10, batch_size=16, average=average, ema=0.9)
    assert ssl.MixMatch(unlabeled, lambda v, g: v, 10, batch_size=16).readouts() == {}
    step(method, net, x, y)
    for a, s in zip(method.average.parameters(), net.parameters()):
        assert torch.equal(a, s)  # the first step copies the student (whose batch-norm statistics then move on)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    old = dict(method.average.named_parameters())["stage1.0.weight"].clone()
    step(method, net, x, y, seed=1)
    torch.testing.assert_close(dict(method.average.named_parameters())["stage1.0.weight"], old + 0.1)  # no warm-up
    assert method.readouts() == {"EMA": method.average}


def test_interleave_gives_each_piece_a_share_of_every_piece_and_undoes_itself():
    pieces = [torch.full((7, 2), float(i)) for i in range(3)]
    mixed = ssl.interleave(pieces)
    assert [tuple(m.shape) for m in mixed] == [(7, 2)] * 3
    assert set(mixed[0][:, 0].tolist()) == {0.0, 1.0, 2.0}  # piece 0 holds rows of every piece
    for i in (1, 2):
        assert set(mixed[i][:, 0].tolist()) == {0.0, float(i)}
    assert sorted(torch.cat(mixed)[:, 0].tolist()) == sorted(torch.cat(pieces)[:, 0].tolist())  # rows traded, none lost
    for back, piece in zip(ssl.interleave(mixed), pieces):
        assert torch.equal(back, piece)
    with pytest.raises(ValueError, match="equal-length"):
        ssl.interleave([torch.zeros(4, 1), torch.zeros(3, 1)])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_interleaved_mixmatch_changes_only_what_batch_norm_sees(batch_norm):
    """Without batch norm the passes are independent per example, so interleaving leaves the loss
    as it is (up to float rounding); with it, each pass normalises over its own batch."""
    g = torch.Generator().manual_seed(0)
    unlabeled, x, y = torch.randn(40, 1, 8, 8, generator=g), torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    torch.manual_seed(1)
    net = models.small_cnn(1, 3, width=2, image_size=8) if batch_norm else models.mlp(64, 3, hidden=(16,))
    losses = []
    for interleaved in (False, True):
        method = ssl.MixMatch(unlabeled, lambda v, gen: random_crop_flip(v, gen, padding=1), 3, k=2, batch_size=8,
                              rampup_steps=0, interleaved=interleaved)
        losses.append(method.loss(copy.deepcopy(net), x, y, torch.Generator().manual_seed(2)).item())
    if batch_norm:
        assert abs(losses[0] - losses[1]) > 1e-4
    else:
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    method = ssl.MixMatch(unlabeled, lambda v, gen: v, 3, batch_size=8, interleaved=True)
    with pytest.raises(ValueError, match="interleaved MixMatch needs labelled batches of batch_size=8"):
        method.loss(net, x[:4], y[:4], torch.Generator().manual_seed(2))


def test_bad_arguments():
    net, unlabeled, _, _ = small()
    with pytest.raises(ValueError, match="unlabeled must hold at least batch_size=512"):
        ssl.ICT(unlabeled, net, batch_size=512)
    with pytest.raises(ValueError, match="k must be >= 1"):
        ssl.MixMatch(unlabeled, lambda v, g: v, 10, k=0)
    with pytest.raises(ValueError, match="alpha"):
        ssl.MixMatch(unlabeled, lambda v, g: v, 10, alpha=0)
    with pytest.raises(ValueError, match="temperature"):
        ssl.MixMatch(unlabeled, lambda v, g: v, 10, temperature=2.0)
    with pytest.raises(ValueError, match=r"ramp must be one of \['linear', 'sigmoid'\], got 'cosine'"):
        ssl.MixMatch(unlabeled, lambda v, g: v, 10, batch_size=16, ramp="cosine")
    with pytest.raises(ValueError, match=r"ema must lie in \[0, 1\], got 1.5"):
        ssl.ICT(unlabeled, net, batch_size=16, ema=1.5)
    with pytest.raises(ValueError, match="alpha"):
        ssl.ICT(unlabeled, net, batch_size=16, sup_alpha=-1.0)


@pytest.mark.parametrize("make", ["ict", "mixmatch"])
def test_target_accuracy_is_measured_against_hidden_labels_and_changes_nothing(make):
    from mixuplib.seeding import epoch_generators

    g = torch.Generator().manual_seed(0)
    unlabeled, hidden = torch.randn(40, 1, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g)
    x, y = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)

    def method(labels):
        torch.manual_seed(1)
        if make == "ict":
            return ssl.ICT(unlabeled, models.small_cnn(1, 3, width=2, image_size=8), batch_size=8, rampup_steps=2,
                           hidden_labels=labels)
        return ssl.MixMatch(unlabeled, lambda v, gen: random_crop_flip(v, gen, padding=1), 3, k=2, batch_size=8,
                            rampup_steps=2, hidden_labels=labels)

    losses = {}
    for labels in (None, hidden):
        torch.manual_seed(2)
        net, m = models.small_cnn(1, 3, width=2, image_size=8), method(labels)
        losses[labels is None] = [m.loss(net, x, y, epoch_generators(0, step).mixing).item() for step in range(3)]
        report = m.epoch_end(1)
        if labels is None:
            assert report == {}
        else:
            assert set(report) == {"target_accuracy"} and 0 <= report["target_accuracy"] <= 100
            assert m.epoch_end(2) == {}
    assert losses[True] == losses[False]
    with pytest.raises(ValueError, match=r"hidden_labels must have shape \(40,\)"):
        ssl.ICT(unlabeled, models.small_cnn(1, 3, width=2, image_size=8), batch_size=8, hidden_labels=hidden[:5])
