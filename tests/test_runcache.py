"""The run cache: a run trained once is loaded the second time, with the same bytes and the same random state after it."""

import sys

import pytest
import torch

import mixuplib as mx
from mixuplib import data, runcache
from mixuplib.study import study

study_module = sys.modules["mixuplib.study"]  # the package's name `study` is the function

RECIPE = mx.Recipe(model="mlp", model_options={"hidden": (16,)}, epochs=2, batch_size=32, lr=0.1, milestones=())
METHODS = {"ERM": lambda net: mx.ERM(), "mixup": lambda net: mx.InputMixup(1.0)}


@pytest.fixture(scope="module")
def split():
    return data.load("digits", ".").subset(300, 200, generator=torch.Generator().manual_seed(0))


def test_a_second_study_loads_every_run_and_ends_in_the_same_random_state(split, tmp_path, monkeypatch):
    monkeypatch.setenv(runcache.CACHE_ENV, str(tmp_path))
    first = study(split, METHODS, seeds=[0, 1], recipe=RECIPE)
    after_first = torch.rand(3)
    assert len(list(tmp_path.glob("*.pt"))) == 4
    trained = []
    monkeypatch.setattr(study_module, "fit", lambda *a, **k: trained.append(1))  # a load must not train
    second = study(split, METHODS, seeds=[0, 1], recipe=RECIPE)
    assert trained == []
    assert torch.equal(torch.rand(3), after_first), "later draws do not depend on whether runs were loaded"
    for name in METHODS:
        for a, b in zip(first.runs[name], second.runs[name]):
            assert torch.equal(a.test_logits, b.test_logits) and a.history.records == b.history.records


def test_a_run_differing_in_anything_that_decides_it_is_trained_again(split, tmp_path, monkeypatch):
    monkeypatch.setenv(runcache.CACHE_ENV, str(tmp_path))
    study(split, {"mixup": lambda net: mx.InputMixup(1.0)}, seeds=[0], recipe=RECIPE)
    study(split, {"mixup": lambda net: mx.InputMixup(0.5)}, seeds=[0], recipe=RECIPE)  # the method's configuration
    study(split, {"mixup": lambda net: mx.InputMixup(1.0)}, seeds=[1], recipe=RECIPE)  # the seed
    study(split, {"mixup": lambda net: mx.InputMixup(1.0)}, seeds=[0], recipe=RECIPE.replace(lr=0.05))
    study(split.subset(300, 100, generator=torch.Generator().manual_seed(1)), {"mixup": lambda net: mx.InputMixup(1.0)},
          seeds=[0], recipe=RECIPE)  # the data
    assert len(list(tmp_path.glob("*.pt"))) == 5


def test_without_the_variable_nothing_is_cached(split, tmp_path, monkeypatch):
    monkeypatch.delenv(runcache.CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    study(split, {"ERM": lambda net: mx.ERM()}, seeds=[0], recipe=RECIPE.replace(epochs=1))
    assert runcache.from_environment() is None and list(tmp_path.rglob("*.pt")) == []


def test_a_key_another_process_trains_is_declined_without_waiting(tmp_path):
    cache = runcache.RunCache(tmp_path)
    with cache.hold("k"):
        with pytest.raises(runcache.Busy):  # a second open file description: as another process sees the lock
            with cache.hold("k", wait=False):
                pass
    with cache.hold("k", wait=False):
        pass


def test_a_method_whose_class_has_no_source_is_never_cached(split):
    Nameless = type("Nameless", (mx.ERM,), {})  # made at run time: inspect cannot read its source
    net = torch.nn.Linear(2, 2)
    tensors = (split.x_train, split.y_train, split.x_test, split.y_test)
    assert runcache.run_key(tensors, net, Nameless(), seed=0, recipe=RECIPE, test_each_epoch=True) is None
    assert runcache.run_key(tensors, net, mx.ERM(), seed=0, recipe=RECIPE, test_each_epoch=True) is not None


def test_a_method_with_extra_state_beside_its_tensors_has_a_key(split):
    class Scheduled(mx.ERM):  # like ICT and MixMatch: a non-tensor _extra_state in the state_dict
        def get_extra_state(self):
            return {"step": 3}

        def set_extra_state(self, state):
            pass

    tensors = (split.x_train, split.y_train, split.x_test, split.y_test)
    assert runcache.run_key(tensors, torch.nn.Linear(2, 2), Scheduled(), seed=0, recipe=RECIPE, test_each_epoch=True)
