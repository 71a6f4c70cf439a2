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


def config(**kw):
    return m.TrainConfig(**{"epochs": 6, "lr": 0.1, "milestones": (4,), "weight_decay": 5e-4, **kw})


def weights(net):
    return torch.cat([p.detach().flatten() for p in net.state_dict().values() if p.is_floating_point()])


@pytest.mark.parametrize("method", [m.ERM(), m.InputMixup(1.0), m.InputMixup(0.4, per_sample=True)])
def test_training_learns_and_records_history(method):
    net, batches, test = setup()
    history = m.fit(net, method, batches, test, config(epochs=15))
    assert [r["epoch"] for r in history.records] == list(range(1, 16))
    assert history.last["test_error"] < 20.0 < history.records[0]["test_error"] + 20
    assert history.records[0]["lr"] == 0.1 and history.last["lr"] == pytest.approx(0.01)
    assert {"train_loss", "test_nll", "test_ece", "seconds", "examples_per_s"} <= set(history.last)


def test_two_seeded_runs_agree_and_seeds_differ():
    runs = []
    for seed in (0, 0, 1):
        net, batches, test = setup(seed)
        history = m.fit(net, m.InputMixup(1.0), batches, test, config(seed=seed))
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
    full = m.fit(net, method, batches, test, config())
    expected = weights(net)

    path = str(tmp_path / "run.pt")
    net, batches, test = build()
    m.fit(net, make_method(), batches, test, config(epochs=3, checkpoint=path))  # interrupted after 3 epochs
    torch.manual_seed(999)  # whatever happened in between must not matter
    net, batches, test = build()
    resumed = m.fit(net, make_method(), batches, test, config(checkpoint=path))
    assert torch.equal(weights(net), expected)
    assert resumed.column("train_loss") == full.column("train_loss")
    assert resumed.column("test_error") == full.column("test_error")


def test_callbacks_and_method_numbers_reach_the_history():
    class Counting(m.ERM):
        def epoch_end(self, epoch):
            return {"method_epoch": float(epoch)}

    net, batches, test = setup()
    history = m.fit(net, Counting(), batches, test, config(epochs=2), callbacks=[lambda model, epoch: {"cb": epoch * 2.0}])
    assert history.column("method_epoch") == [1.0, 2.0] and history.column("cb") == [2.0, 4.0]


def test_predict_restores_training_mode():
    net, _, (x, _) = setup()
    net.train()
    logits = m.predict(net, x, batch_size=100)
    assert logits.shape == (256, 2) and net.training
