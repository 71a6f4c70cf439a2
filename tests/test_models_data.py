"""Models (stage-wise, right shapes), metrics, and the data loaders."""

import numpy as np
import pytest
import torch

from mixuplib import data, metrics, models
from mixuplib.batches import TensorBatches, random_crop_flip
from mixuplib.label_noise import corrupt_labels


@pytest.mark.parametrize("build,shape,stages", [
    (lambda: models.preact_resnet18(10), (2, 3, 32, 32), 5),
    (lambda: models.preact_resnet18(100), (2, 3, 32, 32), 5),
    (lambda: models.wide_resnet(16, 2, 10), (2, 3, 32, 32), 4),
    (lambda: models.small_cnn(1, 10), (2, 1, 28, 28), 4),
    (lambda: models.mlp(40, 10, (32, 32)), (2, 40), 3),
    (lambda: models.mlp(40, 10, (32, 32), activation="gelu"), (2, 40), 3),
])
def test_models_are_sequences_of_stages(build, shape, stages):
    torch.manual_seed(0)
    net = build().eval()
    x = torch.randn(shape)
    assert len(net) == stages
    out = net(x)
    assert out.shape == (2, net[-1].out_features if isinstance(net[-1], torch.nn.Linear) else net(x).shape[1])
    for k in range(len(net) + 1):  # running the stages in two parts is the same network
        torch.testing.assert_close(net[k:](net[:k](x)), out)


def test_a_gelu_mlp_is_smooth_and_a_relu_one_piecewise_linear():
    # The second derivative in the input: zero almost everywhere for ReLU, not for GELU.
    torch.manual_seed(0)
    x = torch.randn(2, dtype=torch.float64)
    for activation, curved in (("relu", False), ("gelu", True)):
        net = models.mlp(2, 2, (16, 16), activation=activation).double()
        hessian = torch.func.hessian(lambda z: net(z[None])[0, 1])(x)
        assert bool(hessian.abs().max() > 1e-6) == curved, activation
    with pytest.raises(ValueError, match="activation must be one of \\['gelu', 'relu'\\], got 'tanh'"):
        models.mlp(2, 2, activation="tanh")
    bottleneck = models.mlp(2, 2, (8, 2, 8), linear=(2,))
    assert [type(m).__name__ for m in bottleneck[1]] == ["Linear"] and type(bottleneck[2][-1]).__name__ == "ReLU"
    with pytest.raises(ValueError, match="linear must list hidden layers numbered 1 to 3, got \\(4,\\)"):
        models.mlp(2, 2, (8, 2, 8), linear=(4,))


def test_paper_model_sizes():
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert 11.1e6 < count(models.preact_resnet18(10)) < 11.3e6
    assert 36.4e6 < count(models.wide_resnet(28, 10, 10)) < 36.6e6
    assert 1.4e6 < count(models.wide_resnet(28, 2, 10)) < 1.55e6
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4"):
        models.wide_resnet(27)


def test_metrics_on_known_predictions():
    labels = torch.tensor([0, 1, 1, 0])
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 0.0]])
    out = metrics.classification_metrics(logits, labels)
    assert out["error"] == pytest.approx(25.0)  # argmax of a tie is class 0, which is right
    p = torch.softmax(torch.tensor([4.0, 0.0]), 0)[0].item()
    expected_nll = (-2 * np.log(p) - np.log(1 - p) + np.log(2)) / 4
    assert out["nll"] == pytest.approx(expected_nll, rel=1e-5)
    bins = metrics.reliability_bins(logits, labels, n_bins=2)
    assert bins.count.tolist() == [0.0, 4.0]  # confidence 0.5 of the tie belongs to the upper bin
    assert bins.ece == pytest.approx(abs(3 / 4 - (3 * p + 0.5) / 4), rel=1e-5)
    # with the default 15 bins the tie and the confident predictions are binned apart
    assert out["ece"] == pytest.approx(100 * (0.25 * abs(1 - 0.5) + 0.75 * abs(2 / 3 - p)), rel=1e-5)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        metrics.classification_metrics(logits, labels[:3])


def test_fashion_mnist_from_debian_files(tmp_path):
    split = data.fashion_mnist(tmp_path)
    assert split.x_train.shape == (60000, 1, 28, 28) and split.x_test.shape == (10000, 1, 28, 28)
    assert split.num_classes == 10 and torch.bincount(split.y_train).tolist() == [6000] * 10
    assert abs(float(split.x_train.mean())) < 0.01 and abs(float(split.x_train.std()) - 1) < 0.01
    small = split.subset(1000, 200, generator=torch.Generator().manual_seed(0))
    assert torch.bincount(small.y_train).tolist() == [100] * 10 and len(small.y_test) == 200


def test_fashion_mnist_prepared_by_several_chapters_at_once(tmp_path):
    """Two chapters starting together on a fresh clone both lay the files out; neither may fail
    nor read a half-written file (the race a fresh `make book` once hit)."""
    import gzip
    import threading

    start, errors = threading.Barrier(4), []

    def prepare():
        start.wait()
        try:
            data.prepare_fashion_mnist(tmp_path)
        except Exception as err:  # noqa: BLE001 - the test reports whatever a thread raised
            errors.append(err)

    threads = [threading.Thread(target=prepare) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    raw = tmp_path / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data._FASHION_FILES)  # no temporary file left behind
    with gzip.open(f"{data.DEBIAN_FASHION_MNIST}/t10k-labels-idx1-ubyte.gz", "rb") as f:
        assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == f.read()


def test_fashion_mnist_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.fashion_mnist(tmp_path / "root", source=tmp_path / "nowhere")


def test_mnist1d_digits_and_toys():
    split = data.mnist1d(1000, seed=1)
    assert split.x_train.shape == (800, 40) and split.x_test.shape == (200, 40) and split.num_classes == 10
    assert torch.equal(split.x_train, data.mnist1d(1000, seed=1).x_train)
    d = data.digits()
    assert d.x_train.shape[1] == 64 and len(d.y_train) + len(d.y_test) == 1797 and float(d.x_train.max()) <= 1.0
    for toy in (data.two_moons(100, 50), data.spirals(100, 50, arms=3)):
        assert toy.x_train.shape == (100, 2) and toy.x_test.shape == (50, 2)
    assert data.spirals(100, 50, arms=3).num_classes == 3


class TinyCifar:
    """Stands in for torchvision's CIFAR10 class: the same attributes, a few random images."""

    calls = []

    def __init__(self, root, train, download):
        TinyCifar.calls.append((root, train, download))
        rng = np.random.default_rng(int(train))
        n = 20 if train else 10
        self.data = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.targets = list(rng.integers(0, 10, n))
        self.classes = [f"class {i}" for i in range(10)]


def test_cifar_path_on_local_stand_in(monkeypatch, tmp_path):
    from torchvision import datasets

    monkeypatch.setattr(datasets, "CIFAR10", TinyCifar)
    split = data.cifar("cifar10", tmp_path, download=True)
    assert TinyCifar.calls[-2:] == [(str(tmp_path), True, True), (str(tmp_path), False, True)]
    assert split.x_train.shape == (20, 3, 32, 32) and split.x_test.shape == (10, 3, 32, 32)
    raw = torch.as_tensor(TinyCifar(tmp_path, True, True).data[0, 5, 7]).float() / 255
    mean, std = (torch.tensor(v) for v in data.CIFAR_STATS["cifar10"])
    torch.testing.assert_close(split.x_train[0, :, 5, 7], (raw - mean) / std)


def test_cifar_without_files_or_internet_fails_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="cifar10 is not under .* and download=False"):
        data.cifar("cifar10", tmp_path, download=False)
    with pytest.raises(ValueError, match="name must be one of"):
        data.cifar("cifar1000", tmp_path)


def test_fake_cifar_says_what_it_is():
    split = data.fake_cifar("cifar100", 8, 4)
    assert split.x_train.shape == (8, 3, 32, 32) and split.num_classes == 100 and "random noise" in split.name


def test_random_crop_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    out = random_crop_flip(x, g, padding=2)
    assert out.shape == x.shape
    for i in range(2):  # each output is a window of the padded image, maybe flipped
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        windows = [padded[:, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    assert torch.equal(random_crop_flip(x, torch.Generator().manual_seed(0), padding=0, flip=False), x)


def test_tensor_batches_cover_the_data_once_per_epoch():
    x, y = torch.arange(10).float().view(10, 1), torch.arange(10)
    batches = TensorBatches(x, y, 4)
    seen = torch.cat([yb for _, yb in batches(torch.Generator().manual_seed(0))])
    assert len(batches) == 3 and sorted(seen.tolist()) == list(range(10))
    again = torch.cat([yb for _, yb in batches(torch.Generator().manual_seed(0))])
    assert torch.equal(seen, again)
    assert len(TensorBatches(x, y, 4, drop_last=True)) == 2
    with pytest.raises(ValueError, match="same number of examples"):
        TensorBatches(x, y[:5], 4)


def test_corrupt_labels():
    labels = torch.arange(1000) % 10
    out = corrupt_labels(labels, 0.5, 10, generator=torch.Generator().manual_seed(0))
    assert int(out.resampled.sum()) == 500
    assert torch.equal(out.changed, out.labels != labels) and not bool(out.changed[~out.resampled].any())
    assert 0.85 * 450 < int(out.changed.sum()) < 1.15 * 450  # a redrawn label stays right 1 time in 10
    assert torch.equal(labels, torch.arange(1000) % 10)
    with pytest.raises(ValueError, match=r"fraction must lie in \[0, 1\]"):
        corrupt_labels(labels, 1.2, 10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\]"):
        corrupt_labels(labels, 0.1, 5)


def test_semi_supervised_split_is_balanced_and_disjoint():
    x = torch.arange(100).float().view(100, 1)
    y = torch.arange(100) % 5
    split = data.Split(x, y, x[:10], y[:10], tuple("abcde"), "toy")
    labelled, unlabeled, _ = split.semi_supervised(3, 40, generator=torch.Generator().manual_seed(0))
    assert torch.bincount(labelled.y_train).tolist() == [3] * 5 and unlabeled.shape == (40, 1)
    assert not set(labelled.x_train.flatten().tolist()) & set(unlabeled.flatten().tolist())
    assert torch.equal(labelled.x_test, split.x_test)
    with pytest.raises(ValueError, match="labels_per_class=30 exceeds"):
        split.semi_supervised(30)


def test_subset_indices_are_what_subset_keeps():
    split = data.digits()
    sub = split.subset(100, 50, generator=torch.Generator().manual_seed(3))
    train, test = split.subset_indices(100, 50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sub.x_train, split.x_train[train]) and torch.equal(sub.y_test, split.y_test[test])
    everything, _ = split.subset_indices(None, None)
    assert torch.equal(everything, torch.arange(len(split.y_train)))


def test_semi_supervised_hidden_labels_are_the_unlabelled_inputs_labels():
    split = data.digits()
    labelled, unlabeled, hidden = split.semi_supervised(5, 100, generator=torch.Generator().manual_seed(0))
    again = split.semi_supervised(5, 100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(unlabeled, again.unlabeled) and torch.equal(labelled.y_train, again.labelled.y_train)
    rows = {tuple(r): int(c) for r, c in zip(split.x_train.tolist(), split.y_train.tolist())}
    assert [rows[tuple(r)] for r in unlabeled.tolist()] == hidden.tolist()


def test_the_metric_registry_matches_classification_metrics():
    from mixuplib import metrics

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(300, 5, generator=g), torch.randint(0, 5, (300,), generator=g)
    whole = metrics.classification_metrics(logits, labels)
    per = {name: metrics.metric(name).per_example(logits, labels) for name in ("test_error", "test_nll")}
    assert per["test_error"].shape == (300,) and float(per["test_error"].mean()) == pytest.approx(whole["error"])
    assert float(per["test_nll"].mean()) == pytest.approx(whole["nll"], rel=1e-5)
    assert metrics.metric("test_ece").per_example is None and metrics.metric("test_ece").unit == " %"
    with pytest.raises(ValueError, match="metric must be one of"):
        metrics.metric("accuracy")


def test_preact_resnet18_puts_dropout_in_the_head_or_inside_every_block():
    def dropouts(net):
        return [name for name, m in net.named_modules() if isinstance(m, torch.nn.Dropout)]

    assert dropouts(models.preact_resnet18(10)) == []
    assert dropouts(models.preact_resnet18(10, dropout=0.3)) == ["head.4"]
    inside = models.preact_resnet18(10, dropout=0.3, dropout_in_blocks=True)
    assert len(dropouts(inside)) == 8 and all(".dropout" in name for name in dropouts(inside))
    # Between the two convolutions: with the second convolution's input zeroed out, only the shortcut is left.
    block = inside.stage2[1].eval()
    x = torch.randn(2, 128, 8, 8)
    with torch.no_grad():
        block.conv2.weight.zero_()
        torch.testing.assert_close(block(x), x)
        block.train()
        dropped = block.dropout(torch.ones(1000))
    assert float((dropped == 0).float().mean()) == pytest.approx(0.3, abs=0.05)
