"""The training loop: it learns, seeded runs agree, and a resumed run ends bit-identical."""

import pytest
import torch

import mixuplib as m
from mixuplib import data, models
from mixuplib.batches import TensorBatches


def setup(seed=0, dropout=0.1):
    m.seed_everything(seed)
    split = data.two_moons(128, 256, seed=seed)
    net = models.mlp(2, 2, (32, 32), dropout=dropout)
    batches = TensorBatches(split.x_train, split.y_train, 32)
    return net, batches, (split.x_test, split.y_test)


def fit(net, method, batches, test, *, seed=0, checkpoint=None, callbacks=(), **recipe):
    recipe = m.Recipe(**{"epochs": 6, "lr": 0.1, "milestones": (4,), "weight_decay": 5e-4, **recipe})
    return m.fit(net, method, batches, test, recipe, seed=seed, checkpoint=checkpoint, callbacks=callbacks)


def weights(net):
    return torch.cat([p.detach().flatten() for p in net.state_dict().values() if p.is_floating_point()])


@pytest.mark.parametrize("method", [m.ERM(), m.InputMixup(1.0), m.InputMixup(0.4, per_sample=True)])
def test_training_learns_and_records_history(method):
    net, batches, test = setup()
    history = fit(net, method, batches, test, epochs=15)
    assert [r["epoch"] for r in history.records] == list(range(1, 16))
    assert history.last["test_error"] < 20.0 < history.records[0]["test_error"] + 20
    assert history.records[0]["lr"] == 0.1 and history.last["lr"] == pytest.approx(0.01)
    assert {"train_loss", "test_nll", "test_ece", "seconds", "examples_per_s"} <= set(history.last)


def test_two_seeded_runs_agree_and_seeds_differ():
    runs = []
    for seed in (0, 0, 1):
        net, batches, test = setup(seed)
        history = fit(net, m.InputMixup(1.0), batches, test, seed=seed)
        runs.append((weights(net), history.column("train_loss")))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not torch.equal(runs[0][0], runs[2][0])


def adamixup():
    from mixuplib import adamixup as am

    torch.manual_seed(5)
    return am.AdaMixup(am.PolicyRegionGenerator(am.small_policy_body(3, 8), 8), am.IntrusionDiscriminator(128))


def ict():
    """ICT keeps a step count (its ramp) and a teacher: both must survive a resume."""
    from mixuplib import ssl

    torch.manual_seed(6)
    unlabeled = data.fake_cifar("cifar10", 48, 8, seed=1).x_train
    return ssl.ICT(unlabeled, models.small_cnn(3, 10, width=4, image_size=32), batch_size=16, rampup_steps=10, ema=0.9)


@pytest.mark.parametrize("make_method", [lambda: m.InputMixup(1.0), lambda: m.CutMix(1.0), adamixup, ict],
                         ids=["mixup", "cutmix", "adamixup", "ict"])
def test_resumed_run_is_bit_identical(tmp_path, make_method):
    method = make_method()
    if not isinstance(method, m.InputMixup):
        def build():
            m.seed_everything(0)
            split = data.fake_cifar("cifar10", 64, 32).subset()
            net = models.small_cnn(3, 10, width=4, image_size=32)
            return net, TensorBatches(split.x_train, split.y_train, 16), (split.x_test, split.y_test)
    else:
        build = setup
    net, batches, test = build()
    full = fit(net, method, batches, test)
    expected = weights(net)

    path = str(tmp_path / "run.pt")
    net, batches, test = build()
    fit(net, make_method(), batches, test, epochs=3, checkpoint=path)  # interrupted after 3 epochs
    torch.manual_seed(999)  # whatever happened in between must not matter
    net, batches, test = build()
    resumed = fit(net, make_method(), batches, test, checkpoint=path)
    assert torch.equal(weights(net), expected)
    assert resumed.column("train_loss") == full.column("train_loss")
    assert resumed.column("test_error") == full.column("test_error")


def test_callbacks_and_method_numbers_reach_the_history():
    class Counting(m.ERM):
        def epoch_end(self, epoch):
            return {"method_epoch": float(epoch)}

    net, batches, test = setup()
    history = fit(net, Counting(), batches, test, epochs=2, callbacks=[lambda model, epoch: {"cb": epoch * 2.0}])
    assert history.column("method_epoch") == [1.0, 2.0] and history.column("cb") == [2.0, 4.0]


def test_predict_restores_training_mode():
    net, _, (x, _) = setup()
    net.train()
    logits = m.predict(net, x, batch_size=100)
    assert logits.shape == (256, 2) and net.training


def test_augmentation_leaves_the_data_order_and_the_mixing_draws_where_they_were():
    """Order, augmentation and mixing draw from three generators: turning the augmentation on
    changes the pixels a step sees, not which examples, nor any lambda or partner."""
    from mixuplib.batches import random_crop_flip

    class Recording(m.InputMixup):
        def __init__(self):
            super().__init__(1.0)
            self.draws = []

        def loss(self, model, x, y, generator):
            batch = m.mixup(x, y, self.alpha, generator=generator)
            self.draws.append((y.clone(), batch.lam.clone(), batch.index.clone(), x.clone()))
            return m.mixup_cross_entropy(model(batch.x), batch)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.arange(64) % 3
    runs = {}
    for augment in (None, random_crop_flip):
        torch.manual_seed(0)
        net, method = models.small_cnn(1, 3, width=2, image_size=8), Recording()
        m.fit(net, method, TensorBatches(x, y, 16, drop_last=True, augment=augment), None,
              m.Recipe(epochs=2, milestones=()), seed=4)
        runs[augment is None] = method.draws
    assert len(runs[True]) == len(runs[False]) == 8
    for (y0, lam0, index0, x0), (y1, lam1, index1, x1) in zip(runs[True], runs[False]):
        assert torch.equal(y0, y1) and torch.equal(lam0, lam1) and torch.equal(index0, index1)
    assert not all(torch.equal(a[3], b[3]) for a, b in zip(runs[True], runs[False]))


def test_epoch_generators_are_functions_of_seed_epoch_and_rank():
    from mixuplib.seeding import epoch_generators

    def draws(seed, epoch, rank=0):
        gens = epoch_generators(seed, epoch, rank)
        return [torch.randperm(8, generator=g) for g in (gens.order, gens.augment, gens.mixing)]

    same, other_epoch, other_rank = draws(3, 1), draws(3, 2), draws(3, 1, rank=1)
    assert all(torch.equal(a, b) for a, b in zip(same, draws(3, 1)))
    assert not any(torch.equal(a, b) for a, b in zip(same, other_epoch))
    assert not torch.equal(same[0], same[2])  # the order and the mixing are separate streams
    # Every rank orders and augments alike, and mixes with its own draws.
    assert torch.equal(same[0], other_rank[0]) and torch.equal(same[1], other_rank[1])
    assert not torch.equal(same[2], other_rank[2])
    with pytest.raises(ValueError, match="rank must be an int >= 0, got -1"):
        epoch_generators(0, 0, -1)
