"""What does mixing cost? Side-by-side timings in one run, printed as a table with ratios.

(a) The mixing op on one CIFAR-shaped batch: mixuplib.mixup vs torchvision.transforms.v2.MixUp
    vs timm's Mixup, and a bare torch.lerp of the same tensors (the memory-bandwidth floor).
(b) One training step (forward, backward, SGD) with and without mixup, for PreAct ResNet-18 at
    batch 128 and for the embedded default's small CNN on Fashion-MNIST-shaped batches.

Timings alternate between the variants and report medians, so drift on a busy machine hits
both sides alike. Run: python benchmarks/bench_mixup.py [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import mixuplib
from mixuplib import models


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
    order every other round, so neither always runs first."""
    results = {name: [] for name in fns}
    for r in range(rounds):
        for name in (list(fns) if r % 2 == 0 else reversed(list(fns))):
            results[name].append(timed(fns[name], device, reps))
    return {name: statistics.median(v) for name, v in results.items()}


def mixing_ops(device, rounds, reps):
    from timm.data import Mixup
    from torchvision.transforms import v2

    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (128,), generator=g).to(device)
    other = x.roll(1, 0)
    tv = v2.MixUp(alpha=1.0, num_classes=10)
    tm = Mixup(mixup_alpha=1.0, cutmix_alpha=0.0, num_classes=10)
    fns = {
        "torch.lerp(x_perm, x, lam) (floor)": lambda: torch.lerp(other, x, 0.3),
        "mixuplib.mixup": lambda: mixuplib.mixup(x, y, 1.0, generator=g),
        "torchvision v2.MixUp": lambda: tv(x, y),
        "x.clone() (timm mixes in place)": lambda: x.clone(),
        "timm Mixup (on x.clone())": lambda: tm(x.clone(), y),
    }
    return interleaved(fns, device, rounds, reps)


def step_fns(model, x, y, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)

    def erm():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def mix():
        opt.zero_grad(set_to_none=True)
        batch = mixuplib.mixup(x, y, 1.0, generator=g)
        mixuplib.mixup_cross_entropy(model(batch.x), batch).backward()
        opt.step()

    return {"ERM step": erm, "mixup step": mix}


def training_steps(device, rounds, reps, quick):
    g = torch.Generator().manual_seed(0)
    out = {}
    cases = [("small CNN, 128x1x28x28", models.small_cnn(1, 10), (128, 1, 28, 28))]
    if not quick:
        cases.insert(0, ("PreAct ResNet-18, 128x3x32x32", models.preact_resnet18(10), (128, 3, 32, 32)))
    for name, model, shape in cases:
        model = model.to(device)
        x = torch.randn(shape, generator=g).to(device)
        y = torch.randint(0, 10, (shape[0],), generator=g).to(device)
        out[name] = interleaved(step_fns(model, x, y), device, rounds, reps)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="skip PreAct ResNet-18 (slow on a CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {device.type} ({where})\n")

    ops = mixing_ops(device, rounds=7, reps=50)
    floor = ops["torch.lerp(x_perm, x, lam) (floor)"]
    tv = ops["torchvision v2.MixUp"]
    print("(a) mixing one 128x3x32x32 float32 batch, median")
    print(f"{'op':38s} {'us':>9s} {'x floor':>8s} {'x torchvision':>14s}")
    for name, sec in ops.items():
        print(f"{name:38s} {sec * 1e6:9.1f} {sec / floor:8.2f} {sec / tv:14.2f}")

    steps = training_steps(device, rounds=5 if device.type == "cpu" else 7, reps=3 if device.type == "cpu" else 20, quick=args.quick)
    print("\n(b) one SGD training step, median")
    print(f"{'model, batch':32s} {'ERM ms':>9s} {'mixup ms':>9s} {'mixup / ERM':>12s}")
    for name, t in steps.items():
        print(f"{name:32s} {t['ERM step'] * 1e3:9.2f} {t['mixup step'] * 1e3:9.2f} {t['mixup step'] / t['ERM step']:12.3f}")


if __name__ == "__main__":
    main()
