"""The recipe a chapter trains with, and the chapter harness: data, record, paper comparison."""

import json

import pytest
import torch

import mixuplib as mx
from mixuplib import book, data, models
from mixuplib.batches import TensorBatches
from mixuplib.claims import CHECK_ENV
from mixuplib.results import sample_std, seed_table


def test_recipe_from_parameters_takes_the_model_from_the_setup():
    recipe = mx.Recipe.from_parameters({"data": "digits", "model": "mlp", "model_options": {"hidden": [8]}},
                                       {"epochs": 3, "milestones": [2], "lr": 0.05, "batch_size": 16})
    assert (recipe.model, recipe.model_options, recipe.epochs, recipe.milestones) == ("mlp", {"hidden": [8]}, 3, (2,))
    assert (recipe.lr, recipe.batch_size) == (0.05, 16)
    assert recipe.replace(epochs=1).epochs == 1 and recipe.epochs == 3


@pytest.mark.parametrize("training, message", [({"epoch": 3}, r"unknown settings \['epoch'\]; accepted: \["),
                                               ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0"),
                                               ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
                                               ({"crop_padding": -1}, "crop_padding must be an integer >= 0, got -1")])
def test_recipe_rejects_bad_settings_by_name(training, message):
    with pytest.raises(ValueError, match=message):
        mx.Recipe.from_parameters({"model": "mlp"}, training)


def test_the_recipes_augmentation_crops_with_its_padding():
    from mixuplib.batches import random_crop_flip
    from mixuplib.seeding import epoch_generators

    flat = data.load("digits", ".").subset(64, 16, generator=torch.Generator().manual_seed(0))
    split = data.Split(flat.x_train.view(-1, 1, 8, 8), flat.y_train, flat.x_test.view(-1, 1, 8, 8), flat.y_test,
                       flat.classes, "digits as 8 x 8 images")
    for padding in (1, 3):
        recipe = mx.Recipe(model="small_cnn", model_options={"width": 2}, batch_size=16, augment=True, crop_padding=padding)
        _, _, batches = recipe.start(split, mx.ERM(), seed=0)
        g = epoch_generators(0, 0)
        (x, _), *_ = batches(g.order, g.augment)
        g = epoch_generators(0, 0)
        order = torch.randperm(64, generator=g.order)[:16]
        assert torch.equal(x, random_crop_flip(split.x_train[order], g.augment, padding=padding))
    _, _, plain = mx.Recipe(model="small_cnn", model_options={"width": 2}, batch_size=16).start(split, mx.ERM(), seed=0)
    assert plain.augment is None


def test_train_on_is_the_loop_a_chapter_would_write_by_hand():
    split = data.two_moons(64, 64, seed=0)
    recipe = mx.Recipe(model="mlp", model_options={"hidden": (16,)}, epochs=3, batch_size=16, lr=0.1, milestones=())
    net, history = mx.train_on(split, mx.InputMixup(1.0), seed=3, recipe=recipe)

    mx.seed_everything(3)
    by_hand = models.mlp(2, 2, (16,))
    batches = TensorBatches(split.x_train, split.y_train, 16, drop_last=True)
    reference = mx.fit(by_hand, mx.InputMixup(1.0), batches, (split.x_test, split.y_test),
                       mx.Recipe(epochs=3, lr=0.1, milestones=()), seed=3)
    for a, b in zip(net.state_dict().values(), by_hand.state_dict().values()):
        assert torch.equal(a, b)
    assert history.column("test_error") == reference.column("test_error")
    with pytest.raises(TypeError, match="recipe must be a mixuplib.Recipe, got dict"):
        mx.train_on(split, mx.ERM(), seed=0, recipe={"model": "mlp"})


def test_skipping_the_per_epoch_test_leaves_the_training_as_it_was():
    """Batch norm and dropout included: evaluating after each epoch must not touch the weights,
    the running statistics or the random draws."""
    g = torch.Generator().manual_seed(0)
    split = data.Split(torch.randn(48, 1, 8, 8, generator=g), torch.randint(0, 3, (48,), generator=g),
                       torch.randn(20, 1, 8, 8, generator=g), torch.randint(0, 3, (20,), generator=g), ["a", "b", "c"], "noise")
    recipe = mx.Recipe(model="small_cnn", model_options={"width": 2, "dropout": 0.5}, epochs=3,
                       batch_size=16, lr=0.1, milestones=(2,))
    nets = {}
    for each_epoch in (True, False):
        nets[each_epoch], history = mx.train_on(split, mx.InputMixup(1.0), seed=1, recipe=recipe, test_each_epoch=each_epoch)
        assert ("test_error" in history.last) is each_epoch and len(history.records) == 3
    for a, b in zip(nets[True].state_dict().values(), nets[False].state_dict().values()):
        assert torch.equal(a, b)


def chapter(tmp_path, profile="embedded", name="09_test_chapter"):
    return mx.Chapter(name, profile=profile, seeds=[0, 1], device="cpu", data_root=tmp_path / "data",
                      results_dir=tmp_path / "results" / profile)


def test_chapter_checks_its_name_and_seeds(tmp_path):
    with pytest.raises(ValueError, match="name must be a chapter's notebook name"):
        chapter(tmp_path, name="input mixup")
    with pytest.raises(ValueError, match="seeds must list at least one seed"):
        mx.Chapter("09_x", profile="embedded", seeds=[], device="cpu", data_root=".", results_dir=".")
    assert chapter(tmp_path).claims.enforce and not chapter(tmp_path, "smoke").claims.enforce
    assert chapter(tmp_path, "paper").download and not chapter(tmp_path).download


def test_claims_stop_only_the_books_own_run(tmp_path, monkeypatch):
    assert chapter(tmp_path).claims.enforce, "the test suite runs the book's own run"
    monkeypatch.setenv(CHECK_ENV, "0")  # a changed parameter
    assert not chapter(tmp_path).claims.enforce
    monkeypatch.setenv(CHECK_ENV, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the CPU's own threads: a reader's run, as in Colab
    assert not chapter(tmp_path).claims.enforce


def test_chapter_loads_a_balanced_subset_once(tmp_path):
    book_ = chapter(tmp_path)
    split = book_.load({"data": "digits", "train_size": 100, "test_size": 50})
    assert (len(split.y_train), len(split.y_test)) == (100, 50)
    assert torch.bincount(split.y_train).tolist() == [10] * 10
    assert book_.dataset("digits") is book_.dataset("digits")
    again = book_.load({"data": "digits", "train_size": 100, "test_size": 50})
    assert torch.equal(split.x_train, again.x_train)


PUBLISHED = [mx.Published("CIFAR-10, PreAct ResNet-18", "ERM", "5.6", "Zhang et al. (2018), Fig. 3a", ours="ERM"),
             mx.Published("ImageNet, ResNet-101", "mixup", "75.2", "Zhang et al. (2018)")]


def test_paper_table_reads_the_paper_profile_record_and_the_record_keeps_one_schema(tmp_path, monkeypatch):
    monkeypatch.delenv("MIXUPLIB_RESULTS_DIR", raising=False)
    paper = chapter(tmp_path, "paper")
    with pytest.raises(ValueError, match="ours is required under the paper profile"):
        paper.paper_table(PUBLISHED, caption="c")
    table = paper.paper_table(PUBLISHED, {"ERM": [5.0, 6.0]}, caption="c")
    assert "5.50 ± 0.71" in table.text and "—" in table.text
    paper.write({"test_error": [5.0, 6.0]})
    record = json.loads((tmp_path / "results" / "paper" / "09_test_chapter.json").read_text())
    assert record["paper_comparison"] == {"ERM": [5.0, 6.0]} and record["chapter"] == "09_test_chapter"

    embedded = chapter(tmp_path)
    text = embedded.paper_table(PUBLISHED, {"ERM": [9.0, 9.0]}, caption="c").text
    assert "5.50 ± 0.71" in text  # the paper profile's numbers, not this run's
    missing = mx.Chapter("09_other", profile="embedded", seeds=[0], device="cpu", data_root=".",
                         results_dir=tmp_path / "results" / "embedded")
    assert "not run" in missing.paper_table(PUBLISHED, caption="c").text


def test_seed_table_and_spreads():
    table = seed_table({"ERM": {"error %": [1.0, 3.0], "NLL": [0.1, 0.2]}}, precisions={"NLL": 3}, caption="t")
    assert "2.00 ± 1.41" in table.text and "0.150 ± 0.071" in table.text and "runs" in table.text
    assert sample_std([2.0]) == 0.0 and sample_std([1.0, 3.0]) == pytest.approx(2 ** 0.5)


def test_runner_merges_profile_and_chapter_dicts_key_by_key():
    spec = {"parameters": {"device": "cuda", "training": {"epochs": 200, "lr": 0.1}},
            "chapters": {"07_x": {"training": {"lr": 0.03}, "seeds": [0]}}}
    merged = book.spec_parameters(spec, "07_x", {"training": {"epochs": 2}})
    assert merged == {"device": "cuda", "training": {"epochs": 2, "lr": 0.03}, "seeds": [0]}


def test_validation_images_are_balanced_and_disjoint_from_the_training_subset(tmp_path):
    book_ = chapter(tmp_path)
    setup = {"data": "digits", "train_size": 300, "test_size": 100}
    split = book_.load(setup)
    x_val, y_val = book_.validation(setup, 200)
    assert torch.bincount(y_val).tolist() == [20] * 10
    train_rows = {tuple(r) for r in split.x_train.flatten(1).tolist()}
    assert not train_rows & {tuple(r) for r in x_val.flatten(1).tolist()}
    again = book_.validation(setup, 200)
    assert torch.equal(x_val, again[0])
    with pytest.raises(ValueError, match="n must be at most the"):
        book_.validation(setup, 10_000)
