"""One study: methods × seeds on one split and recipe, compared by name and paired by seed."""

import copy

import numpy as np
import pytest
import torch

import mixuplib as mx
from mixuplib import data
from mixuplib.metrics import metric
from mixuplib.study import study

RECIPE = mx.Recipe(model="mlp", model_options={"hidden": (16,)}, epochs=2, batch_size=32, lr=0.1, milestones=())


@pytest.fixture(scope="module")
def split():
    return data.load("digits", ".").subset(300, 200, generator=torch.Generator().manual_seed(0))


def test_a_study_pairs_methods_by_seed_and_keeps_test_predictions(split):
    seen = []

    def erm(net):
        seen.append(type(net).__name__)  # factories receive the built model
        return mx.ERM()

    runs = study(split, {"ERM": erm, "same ERM": lambda net: mx.ERM(), "mixup": lambda net: mx.InputMixup(1.0)},
                 seeds=[3, 4, 5], recipe=RECIPE)
    assert seen == ["Sequential"] * 3 and runs.seeds == [3, 4, 5] and set(runs.models) == {"ERM", "same ERM", "mixup"}
    assert runs.per_example("ERM", "test_error").shape == (3, 200)
    # The final logits score what the last epoch's evaluation scored.
    last_epoch = [r.history.last["test_error"] for r in runs.runs["ERM"]]
    assert runs.last("ERM", "test_error") == pytest.approx(last_epoch)
    assert runs.epochs("ERM", "test_error").shape == (3, 2)
    twin = runs.compare("ERM", "same ERM", "test_error")  # same seed, same batches and weights: no difference
    assert twin.difference == 0 and twin.low == 0 and twin.high == 0 and twin.within(0.1)
    versus = runs.compare("mixup", "ERM", "test_nll")
    assert versus.n_examples == 200 and versus.seeds == (3, 4, 5)
    seeds_only = runs.compare("mixup", "ERM", "test_ece")
    assert seeds_only.n_examples is None
    record = runs.record(["test_error", "train_loss"])
    assert record["mixup"]["seeds"] == [3, 4, 5] and len(record["mixup"]["train_loss"]) == 3
    table = runs.table(["test_error", "test_nll"], caption="two epochs")
    assert "<caption>two epochs</caption>" in table.html and "test error %" in table.html
    # A side experiment on fewer seeds pairs with the same runs: the subset keeps them, in seed order.
    fewer = runs.on_seeds([5, 3])
    assert fewer.seeds == [3, 5] and fewer.runs["ERM"] == [runs.runs["ERM"][0], runs.runs["ERM"][2]]
    assert fewer.compare("mixup", "ERM", "test_nll").seeds == (3, 5)
    assert fewer.models == runs.models and runs.on_seeds([4, 5]).models == {}, "models are the first seed's"
    with pytest.raises(ValueError, match="subset of the study's seeds"):
        runs.on_seeds([3, 9])


class _Averaged(mx.ERM):
    """ERM that also keeps a frozen copy of the initial weights as a readout."""

    def __init__(self, net):
        super().__init__()
        self.frozen = copy.deepcopy(net).requires_grad_(False)

    def readouts(self):
        return {"frozen": self.frozen}


def test_a_methods_readouts_are_scored_as_runs_of_their_own(split):
    runs = study(split, {"ERM": lambda net: mx.ERM(), "kept": _Averaged}, seeds=[0, 1], recipe=RECIPE.replace(epochs=1),
                 keep_models=True)
    assert list(runs.runs) == ["ERM", "kept", "kept (frozen)"] and set(runs.models) == set(runs.runs)
    frozen = runs.trained("kept (frozen)")
    assert torch.equal(mx.predict(frozen[1], split.x_test).float(), runs.runs["kept (frozen)"][1].test_logits)
    # The readout is the untrained copy: it scores worse than the trained twin, and shares its seeds and history.
    assert np.mean(runs.last("kept (frozen)", "test_error")) > np.mean(runs.last("kept", "test_error"))
    assert runs.runs["kept (frozen)"][0].history is runs.runs["kept"][0].history
    assert runs.compare("kept (frozen)", "ERM", "test_error").seeds == (0, 1)


def test_a_study_keeps_every_seeds_model_only_when_asked(split):
    runs = study(split, {"ERM": lambda net: mx.ERM()}, seeds=[0, 1], recipe=RECIPE.replace(epochs=1), keep_models=True)
    nets = runs.trained("ERM")
    assert len(nets) == 2 and nets[0] is runs.models["ERM"] and nets[0] is not nets[1]
    # Each kept model is the run's final one: it predicts the logits the run was scored on.
    assert torch.equal(mx.predict(nets[1], split.x_test).float(), runs.runs["ERM"][1].test_logits)
    lean = study(split, {"ERM": lambda net: mx.ERM()}, seeds=[0], recipe=RECIPE.replace(epochs=1))
    with pytest.raises(ValueError, match="keep_models=True"):
        lean.trained("ERM")


def test_a_factory_is_called_after_seeding_so_what_it_initialises_belongs_to_the_run(split):
    # e.g. AdaMixup's discriminator or ICT's teacher: built from the model, drawn from the run's seed.
    drawn = {}

    def factory(seed):
        def build(net):
            drawn.setdefault(seed, []).append(float(torch.rand(())))
            return mx.ERM()
        return build

    for seed in (0, 0, 1):
        mx.train_on(split, factory(seed), seed=seed, recipe=RECIPE.replace(epochs=1))
    assert drawn[0][0] == drawn[0][1] != drawn[1][0]


def test_bad_studies_are_refused_by_name(split):
    with pytest.raises(ValueError, match="seeds must list distinct seeds"):
        study(split, {"ERM": lambda net: mx.ERM()}, seeds=[1, 1], recipe=RECIPE)
    with pytest.raises(ValueError, match="methods must name at least one"):
        study(split, {}, seeds=[1], recipe=RECIPE)
    runs = study(split, {"ERM": lambda net: mx.ERM()}, seeds=[0], recipe=RECIPE.replace(epochs=1))
    with pytest.raises(ValueError, match="method must be one of"):
        runs.last("mixup", "test_error")
    with pytest.raises(ValueError, match="has no per-example values"):
        runs.per_example("ERM", "test_ece")
    with pytest.raises(TypeError, match="the method factory must return a mixuplib.Method"):
        mx.train_on(split, lambda net: None, seed=0, recipe=RECIPE)
    assert np.isinf(runs.compare("ERM", "ERM", "test_error").high), "one seed resolves nothing"


def test_a_study_can_draw_each_seeds_data_and_scores_each_run_on_its_own_test_set():
    drawn = []

    def toy(seed):
        drawn.append(seed)
        return data.two_moons(40, 60, noise=0.2, seed=2 * seed)

    runs = study(toy, {"ERM": lambda net: mx.ERM(), "mixup": lambda net: mx.InputMixup(1.0)}, seeds=[1, 2],
                 recipe=RECIPE.replace(epochs=1, batch_size=20), keep_models=True)
    assert drawn == [1, 2], "one draw per seed, shared by the methods"
    assert not torch.equal(runs.split_of(1).x_train, runs.split_of(2).x_train) and runs.split is runs.split_of(1)
    for k, seed in enumerate(runs.seeds):  # each row is scored against its own seed's test labels
        own = metric("test_error").per_example(runs.runs["ERM"][k].test_logits, runs.split_of(seed).y_test)
        assert np.array_equal(runs.per_example("ERM", "test_error")[k], own.numpy().astype(float))
        assert torch.equal(mx.predict(runs.trained("ERM")[k], runs.split_of(seed).x_test).float(),
                           runs.runs["ERM"][k].test_logits)
    assert runs.compare("mixup", "ERM", "test_nll").n_examples == 60
    assert runs.on_seeds([2]).split_of(2) is runs.split_of(2)
    with pytest.raises(ValueError, match="one of the study's seeds"):
        runs.split_of(7)
    with pytest.raises(TypeError, match="function of the seed returning one"):
        study(lambda seed: "not data", {"ERM": lambda net: mx.ERM()}, seeds=[0], recipe=RECIPE)
