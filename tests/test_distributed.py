"""DDP training on two CPU processes (gloo): ERM matches a 1-rank run of the same global batch,
the ranks' weights stay identical, and under mixup each rank mixes within its own shard with
its own, reproducible draws."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mixuplib as m
from mixuplib import data, input_mixup, models
from mixuplib.batches import TensorBatches
from mixuplib.distributed import ShardedBatches
from mixuplib.mixing import sample_lambda
from mixuplib.seeding import epoch_generators

WORLD, SHARD, SEED, EPOCHS = 2, 32, 3, 3
GLOBAL = WORLD * SHARD


def fit(model, method, batches, test, *, checkpoint=None, **recipe):
    recipe = m.Recipe(**{"epochs": EPOCHS, "lr": 0.1, "milestones": (2,), "weight_decay": 5e-4, **recipe})
    return m.fit(model, method, batches, test, recipe, seed=SEED, checkpoint=checkpoint)


def moons():
    split = data.two_moons(256, 256, seed=0)
    return split.x_train, split.y_train, split.x_test, split.y_test


def net(init_seed=0):
    torch.manual_seed(init_seed)
    return models.mlp(2, 2, (32, 32))


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values()])


def _worker(rank, store, out, tensors):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        x, y, x_test, y_test = tensors
        batches = TensorBatches(x, y, GLOBAL, drop_last=True)
        result = {}
        # Rank 1 starts from other weights: DDP must hand it rank 0's.
        model = net(init_seed=rank)
        history = fit(model, m.ERM(), batches, (x_test, y_test), checkpoint=str(out / "erm.pt"))
        result["erm"], result["erm_history"] = weights(model), history.records

        draws, original = [], input_mixup.mixup

        def recording(x, y, *args, **kwargs):
            batch = original(x, y, *args, **kwargs)
            draws.append({"x": x.clone(), "index": batch.index.clone(), "lam": batch.lam.clone(), "mixed": batch.x.clone()})
            return batch

        input_mixup.mixup = recording
        try:
            model = net()
            fit(model, m.InputMixup(1.0), batches, (x_test, y_test))
        finally:
            input_mixup.mixup = original
        result["mixup"], result["draws"] = weights(model), draws

        # Interrupted after 2 epochs, then resumed from the per-rank checkpoints.
        path = str(out / "mixup.pt")
        fit(net(), m.InputMixup(1.0), batches, (x_test, y_test), epochs=2, checkpoint=path)
        model = net(init_seed=7)
        fit(model, m.InputMixup(1.0), batches, (x_test, y_test), checkpoint=path)
        result["resumed"] = weights(model)
        torch.save(result, out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(tmp / "store", tmp, moons()), nprocs=WORLD, join=True)
    return tmp, [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_erm_on_two_ranks_matches_one_rank_of_the_same_global_batch(ranks):
    tmp, results = ranks
    x, y, x_test, y_test = moons()
    model = net()
    reference = fit(model, m.ERM(), TensorBatches(x, y, GLOBAL, drop_last=True), (x_test, y_test))
    torch.testing.assert_close(results[0]["erm"], weights(model), rtol=0, atol=1e-5)
    for r in range(WORLD):  # train_loss is averaged over all ranks' examples
        got = [rec["train_loss"] for rec in results[r]["erm_history"]]
        assert got == pytest.approx(reference.column("train_loss"), rel=1e-5)
        assert [rec["test_error"] for rec in results[r]["erm_history"]] == reference.column("test_error")
    # Each rank's checkpoint holds the plain model, loadable without DDP.
    state = torch.load(tmp / "erm.pt.rank0", weights_only=True)
    plain = net(init_seed=5)
    plain.load_state_dict(state["model"])
    assert torch.equal(weights(plain), results[0]["erm"])


def test_ranks_weights_stay_identical(ranks):
    _, (zero, one) = ranks
    assert torch.equal(zero["erm"], one["erm"])
    assert torch.equal(zero["mixup"], one["mixup"])
    assert not torch.equal(zero["erm"], zero["mixup"])


def test_each_rank_mixes_within_its_own_shard_with_its_own_reproducible_draws(ranks):
    _, results = ranks
    x, y, _, _ = moons()
    batches = TensorBatches(x, y, GLOBAL, drop_last=True)
    steps = len(batches)
    for r, result in enumerate(results):
        draws = result["draws"]
        assert len(draws) == EPOCHS * steps
        for epoch in range(EPOCHS):
            global_batches = [xb for xb, _ in batches(epoch_generators(SEED, epoch).order)]
            generator = epoch_generators(SEED, epoch, r).mixing
            for step in range(steps):
                draw = draws[epoch * steps + step]
                # The rank's shard is its contiguous slice of the shared global batch ...
                assert torch.equal(draw["x"], global_batches[step][r * SHARD:(r + 1) * SHARD])
                # ... and the partners come from that shard: a permutation of its rows.
                assert torch.equal(draw["index"].sort().values, torch.arange(SHARD))
                lam = draw["lam"]
                torch.testing.assert_close(draw["mixed"], lam * draw["x"] + (1 - lam) * draw["x"][draw["index"]])
                # The draws come from the rank's mixing generator of (seed, epoch, rank), in mixup's order.
                assert torch.equal(draw["index"], torch.randperm(SHARD, generator=generator))
                assert torch.equal(lam, sample_lambda(1.0, generator=generator).to(lam.dtype))
    lams = [torch.stack([d["lam"] for d in result["draws"]]) for result in results]
    assert not torch.equal(lams[0], lams[1])


def test_resumed_distributed_run_ends_where_an_uninterrupted_one_does(ranks):
    _, results = ranks
    for result in results:
        assert torch.equal(result["resumed"], result["mixup"])


def test_sharded_batches_split_every_global_batch_into_contiguous_slices():
    x, y = torch.arange(24.0).view(12, 2), torch.arange(12)
    batches = TensorBatches(x, y, 6, drop_last=True)
    shards = [list(ShardedBatches(batches, r, 3)(torch.Generator().manual_seed(1))) for r in range(3)]
    whole = list(batches(torch.Generator().manual_seed(1)))
    assert len(ShardedBatches(batches, 0, 3)) == len(batches) == 2
    for step, (xb, yb) in enumerate(whole):
        assert torch.equal(torch.cat([s[step][0] for s in shards]), xb)
        assert torch.equal(torch.cat([s[step][1] for s in shards]), yb)


def test_sharded_batches_reject_bad_arguments():
    uneven = TensorBatches(torch.zeros(10, 2), torch.zeros(10, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="split evenly over world_size=2 ranks, got a batch of 5"):
        next(iter(ShardedBatches(uneven, 0, 2)(torch.Generator())))
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, 1\] for world_size=2, got 2"):
        ShardedBatches(uneven, 2, 2)
    with pytest.raises(ValueError, match="world_size must be an int >= 1, got 0"):
        ShardedBatches(uneven, 0, 0)
    with pytest.raises(TypeError, match="batches must be callable"):
        ShardedBatches([1, 2], 0, 1)
