"""What does mixing cost? Side-by-side timings in one run, printed as tables of ratios.

(a) The mixing op on one CIFAR-shaped batch, against the memory floor: the gather of the
    partners and one ``torch.lerp``, which any mixup must do. mixuplib.mixup on its three
    paths (random lambda and pairing; an explicit lam and index; one lambda per example),
    beside torchvision.transforms.v2.MixUp and timm's Mixup.
(b) One training step (forward, backward, SGD) of every method in mixuplib, as a ratio to an
    ERM step of the same model and batch: the embedded default's small CNN on
    Fashion-MNIST-shaped batches, and PreAct ResNet-18 on CIFAR-shaped ones (not with --quick).
    ICT and MixMatch also run the network on an unlabelled batch, so their ratio counts that
    extra work too; AdaMixup runs a policy network and a 1.5x batch.

Timings alternate between the variants and report medians, so drift on a busy machine hits
every variant alike. On Linux the C allocator is told to keep freed memory (mallopt): a
1.5 MB batch returned to the kernel and faulted back in on every call costs more than the
mixing itself, and which variant pays it depends on allocation order, not on its own work.
Run: python benchmarks/bench_mixup.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import mixuplib
from mixuplib import adamixup, data, models, ssl
from mixuplib.batches import random_crop_flip
from mixuplib.manifold import ManifoldMixup


def keep_freed_memory() -> bool:
    """Ask glibc to serve large buffers from its heap and never trim it (see the docstring)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, reps):
    """Median seconds of ``fn`` over ``reps`` calls (after a warm-up call)."""
    fn()
    sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict, device, rounds, reps):
    """Median over ``rounds`` of each variant's median; the variants take turns, in reversed
    order every other round, so none always runs first."""
    results = {name: [] for name in fns}
    for r in range(rounds):
        for name in (list(fns) if r % 2 == 0 else reversed(list(fns))):
            results[name].append(timed(fns[name], device, reps))
    return {name: statistics.median(v) for name, v in results.items()}


FLOOR, FLOOR_PER_SAMPLE = "gather + torch.lerp (the floor)", "gather + per-example lerp (floor)"


def mixing_ops(device, rounds, reps):
    """(name -> seconds, name -> the floor it is compared with)."""
    from timm.data import Mixup
    from torchvision.transforms import v2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (128,), generator=g).to(device)
    index = torch.randperm(128, generator=g).to(device)
    weights = torch.rand(128, 1, 1, 1, generator=g).to(device)
    tv = v2.MixUp(alpha=1.0, num_classes=10)
    tm = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, num_classes=10)
    fns = {
        FLOOR: lambda: torch.lerp(x.index_select(0, index), x, 0.3),
        "mixuplib.mixup (random lam and pairing)": lambda: mixuplib.mixup(x, y, 1.0, generator=g),
        "mixuplib.mixup(lam=0.3, index=idx)": lambda: mixuplib.mixup(x, y, lam=0.3, index=index),
        FLOOR_PER_SAMPLE: lambda: torch.lerp(x.index_select(0, index), x, weights),
        "mixuplib.mixup(per_sample=True)": lambda: mixuplib.mixup(x, y, 1.0, generator=g, per_sample=True),
        "torchvision v2.MixUp": lambda: tv(x, y),
        "timm Mixup (on x.clone(); mixes in place)": lambda: tm(x.clone(), y),
    }
    floors = {name: FLOOR_PER_SAMPLE if "per" in name else FLOOR for name in fns}
    return interleaved(fns, device, rounds, reps), floors


def methods(model_builder, shape, num_classes, device):
    """Every mixuplib method, built for a model of ``model_builder()`` on inputs ``shape``."""
    g = torch.Generator().manual_seed(1)
    unlabeled = torch.randn(512, *shape, generator=g).to(device)
    width = model_builder()[:-1](torch.zeros(2, *shape)).shape[1]  # what the discriminator reads
    policy = adamixup.PolicyRegionGenerator(adamixup.small_policy_body(shape[0], 32), 32)
    return {
        "ERM": lambda: mixuplib.ERM(),
        "input mixup (alpha 1)": lambda: mixuplib.InputMixup(1.0),
        "manifold mixup (alpha 2, layers 0-2)": lambda: ManifoldMixup(2.0, (0, 1, 2)),
        "AdaMixup": lambda: adamixup.AdaMixup(policy, adamixup.IntrusionDiscriminator(width)),
        "ICT": lambda: ssl.ICT(unlabeled, model_builder(), batch_size=128),
        "MixMatch (K = 2)": lambda: ssl.MixMatch(unlabeled, lambda v, gen: random_crop_flip(v, gen, padding=2),
                                                 num_classes, batch_size=128),
    }


def training_steps(device, rounds, reps, quick):
    """(case -> method -> seconds per step)."""
    cases = [("small CNN, 128x1x28x28", lambda: models.small_cnn(1, 10), (1, 28, 28))]
    if not quick:
        cases.append(("PreAct ResNet-18, 128x3x32x32", lambda: models.preact_resnet18(10), (3, 32, 32)))
    out = {}
    for name, build, shape in cases:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(128, *shape, generator=g).to(device)
        y = torch.randint(0, 10, (128,), generator=g).to(device)
        fns = {}
        for method_name, make in methods(build, shape, 10, device).items():
            torch.manual_seed(0)
            model, method = build().to(device), make().to(device)
            opt = torch.optim.SGD(list(model.parameters()) + list(method.parameters()), lr=0.01, momentum=0.9)
            step_generator = torch.Generator().manual_seed(2)

            def step(model=model, method=method, opt=opt, step_generator=step_generator):
                opt.zero_grad(set_to_none=True)
                method.loss(model, x, y, step_generator).backward()
                opt.step()

            fns[method_name] = step
        out[name] = interleaved(fns, device, rounds, reps)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="skip PreAct ResNet-18 (slow on a CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    steady = keep_freed_memory()
    print(f"torch {torch.__version__} on {device.type} ({where}); allocator kept steady: {steady}\n")

    ops, floors = mixing_ops(device, rounds=15, reps=40)
    tv = ops["torchvision v2.MixUp"]
    print("(a) mixing one 128x3x32x32 float32 batch, median of alternating rounds")
    print(f"{'op':44s} {'us':>8s} {'x floor':>8s} {'x torchvision':>14s}")
    for name, sec in ops.items():
        print(f"{name:44s} {sec * 1e6:8.1f} {sec / ops[floors[name]]:8.2f} {sec / tv:14.2f}")

    steps = training_steps(device, rounds=5 if device.type == "cpu" else 7, reps=3 if device.type == "cpu" else 20,
                           quick=args.quick)
    print("\n(b) one SGD training step per method, median, as a ratio to ERM")
    for case, times in steps.items():
        print(f"{case}")
        for name, sec in times.items():
            print(f"  {name:40s} {sec * 1e3:9.2f} ms {sec / times['ERM']:8.2f} x ERM")


if __name__ == "__main__":
    main()
