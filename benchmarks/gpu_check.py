"""The GPU path, checked and measured in one prepared run (about 7 minutes on one H100).

    python benchmarks/gpu_check.py --out results/gpu            # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu-check   # the same code on a CPU, in seconds

What it does, each part writing into ``<out>/gpu_check.json`` as it finishes (so a run cut
short still reports what it did) and a readable log on stdout:

1. ``chapters``: the smoke profile of every chapter (mixuplib/profiles.yml) on ``--device``:
   the chapters' own code cells, executed in-process in order with the profile's parameters
   (the GPU machine has no Jupyter; papermill and nbval cover the notebook machinery on
   CPU). It checks each chapter's CUDA code path, not its numbers.
2. ``throughput``: training-step throughput of PreAct ResNet-18, batch 128, CIFAR-shaped
   data, side by side in one run: the book's paper recipe (bf16 autocast, channels_last,
   data and crop/flip on the GPU, mixup from mixuplib; :func:`mixuplib.train.fit`) against an
   fp32 loop written the way the official mixup-cifar10 ``train.py`` is (a DataLoader with
   PIL transforms in worker processes, fp32, ``np.random.beta`` and ``randperm`` mixing, the
   loss and accuracy read back every step).
3. ``sync``: every method's training step (ERM, input mixup, manifold mixup, AdaMixup, ICT,
   MixMatch) inside the real training loop with ``torch.cuda.set_sync_debug_mode("warn")``
   after two warm-up steps: every host-device synchronisation is counted with the line that
   caused it. Zero per step is the goal; the epoch-end logging is outside the window.
4. ``fashion_mnist``: a real-data run, the full Fashion-MNIST (60,000 / 10,000) with PreAct
   ResNet-18 (1-channel stem), ERM against input mixup (alpha = 1), with as many epochs as fit
   ``--fashion-budget`` seconds at the throughput just measured. Chapter 2 shows it as its
   "measured on a GPU" table once ``results/gpu/fashion_mnist.json`` exists.

The Fashion-MNIST files come from ``--fashion-source`` (Debian's dataset-fashion-mnist, or a
copy carried to a machine without internet).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import sys
import time
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mixuplib as mx  # noqa: E402
from mixuplib import adamixup, book, data, models, ssl  # noqa: E402
from mixuplib.batches import TensorBatches, random_crop_flip  # noqa: E402
from mixuplib.manifold import ManifoldMixup  # noqa: E402
from mixuplib.results import RESULTS_DIR_ENV  # noqa: E402


class Report:
    """The check's JSON, rewritten after every part so a cut-short run keeps what it did."""

    def __init__(self, path: Path, device: torch.device):
        self.path, self.record = path, {"device": describe(device), "torch": torch.__version__, "parts": {}}
        path.parent.mkdir(parents=True, exist_ok=True)
        self.save()

    def add(self, part: str, value) -> None:
        self.record["parts"][part] = value
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.record, indent=2) + "\n")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def log(message: str) -> None:
    print(message, flush=True)


# 1. The chapters' smoke profile, in-process ------------------------------------------------

def chapter_source(path: Path) -> list[tuple[str, list[str]]]:
    """(source, tags) of each code cell; IPython-only lines (``%pip``, ``!cmd``) become ``pass``,
    and so does importing ``display`` (the executor provides one: a GPU machine without
    Jupyter has no IPython, and there is nothing to display there)."""
    cells = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        lines = "".join(cell["source"]).splitlines()
        lines = [re.sub(r"^(\s*)([%!].*|from IPython\.display import display)$", r"\1pass", line) for line in lines]
        cells.append(("\n".join(lines), cell.get("metadata", {}).get("tags", [])))
    return cells


def run_chapter_inline(path: Path, parameters: dict) -> None:
    """Execute a chapter's code cells in one namespace, the parameters injected after the
    ``parameters`` cell as papermill does, in the chapter's folder."""
    namespace = {"__name__": "__main__", "display": lambda *args, **kwargs: None}
    cwd = os.getcwd()
    os.chdir(path.parent)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # what the cells print is the notebook's, not the log's
            for source, tags in chapter_source(path):
                exec(compile(source, f"{path.name}", "exec"), namespace)
                if "parameters" in tags:
                    namespace.update(parameters)
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt

        plt.close("all")


def check_chapters(device: torch.device, chapters: list[str] | None) -> dict:
    profile = book.load_profiles()["smoke"]
    os.environ[RESULTS_DIR_ENV] = tempfile.mkdtemp(prefix="smoke-results-")  # noise-data numbers: not kept
    results = {}
    for name in chapters or list(profile["chapters"]):
        parameters = {**book.spec_parameters(profile, name), "device": str(device)}
        start = time.perf_counter()
        try:
            run_chapter_inline(ROOT / "notebooks" / f"{name}.ipynb", parameters)
            results[name] = {"ok": True}
        except Exception as err:  # a chapter's failure is a finding; the check goes on
            results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                             "traceback": traceback.format_exc()[-1500:]}
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        log(f"  chapter {name:24s} {'ok' if results[name]['ok'] else 'FAILED: ' + results[name]['error']}"
            f"  ({results[name]['seconds']} s)")
    return results


# 2. Throughput: the book's recipe against the official mixup-cifar10 loop -------------------

class CifarShapedImages(torch.utils.data.Dataset):
    """uint8 HWC images read through PIL with torchvision transforms, as torchvision's CIFAR10
    dataset does for the official code (the pixels are noise: only the speed matters)."""

    def __init__(self, n: int, transform):
        g = np.random.default_rng(0)
        self.images = g.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        self.labels = g.integers(0, 10, n)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def official_loop_images_per_s(device: torch.device, model: str, steps: int, warmup: int, workers: int,
                               batch_size: int = 128) -> float:
    """fp32, DataLoader with CPU transforms, numpy-Beta mixing, loss and accuracy read back
    every step: the shape of facebookresearch/mixup-cifar10's train.py."""
    import torchvision.transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
    loader = torch.utils.data.DataLoader(CifarShapedImages(batch_size * (steps + warmup), transform), batch_size=batch_size,
                                         shuffle=True, num_workers=workers, drop_last=True)
    torch.manual_seed(0)
    net = models.build(model, (3, 32, 32), 10).to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    net.train()
    train_loss, correct, total, seen, start = 0.0, 0.0, 0, 0, None
    for i, (inputs, targets) in enumerate(loader):
        if i == warmup:
            sync(device)
            start, seen = time.perf_counter(), 0
        inputs, targets = inputs.to(device), targets.to(device)
        lam = np.random.beta(1.0, 1.0)
        index = torch.randperm(inputs.size(0)).to(device)
        mixed = lam * inputs + (1 - lam) * inputs[index, :]
        outputs = net(mixed)
        loss = lam * F.cross_entropy(outputs, targets) + (1 - lam) * F.cross_entropy(outputs, targets[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_loss += loss.item()
        _, predicted = torch.max(outputs.data, 1)
        total += targets.size(0)
        correct += (lam * predicted.eq(targets.data).cpu().sum().float()
                    + (1 - lam) * predicted.eq(targets[index].data).cpu().sum().float())
        seen += inputs.size(0)
    sync(device)
    return seen / (time.perf_counter() - start)


def recipe_images_per_s(device: torch.device, model: str, steps: int, compile: bool,
                        batch_size: int = 128) -> tuple[float, list[float]]:
    """The paper profile's recipe through mixuplib.fit; images/s of the epochs after the first."""
    split = data.fake_cifar("cifar10", batch_size * steps, 256).to(device)
    amp = device.type == "cuda"
    recipe = mx.Recipe(model=model, epochs=3, batch_size=batch_size, augment=True, lr=0.1, milestones=(), amp=amp,
                       channels_last=amp, compile=compile)
    net, history = mx.train_on(split, mx.InputMixup(1.0), seed=0, recipe=recipe)
    rates = history.column("examples_per_s")
    return float(np.median(rates[1:])), rates


def check_throughput(device: torch.device, model: str, quick: bool) -> dict:
    steps, warmup = (4, 1) if quick else (120, 15)
    workers = 0 if quick else min(8, os.cpu_count() or 1)
    official = official_loop_images_per_s(device, model, steps, warmup, workers)
    log(f"  official-style fp32 loop ({workers} loader workers): {official:9.0f} images/s")
    ours, epochs = recipe_images_per_s(device, model, steps, compile=False)
    log(f"  mixuplib recipe (bf16, channels_last, data on device): {ours:9.0f} images/s  -> {ours / official:.2f}x")
    result = {"model": model, "official_fp32_images_per_s": official, "recipe_images_per_s": ours,
              "recipe_epochs_images_per_s": epochs, "ratio": ours / official, "steps_per_epoch": steps,
              "loader_workers": workers}
    return result


def check_scaling(device: torch.device, model: str) -> dict:
    """Images/s against batch size, both loops: a step that costs the same at 4x the images
    is bound by launching kernels and Python, not by the GPU's arithmetic."""
    workers = min(8, os.cpu_count() or 1)
    result = {}
    for batch_size in (128, 256, 512):
        steps = max(12, 6144 // batch_size)
        ours, _ = recipe_images_per_s(device, model, steps, compile=False, batch_size=batch_size)
        official = official_loop_images_per_s(device, model, steps, 4, workers, batch_size=batch_size)
        result[batch_size] = {"recipe_images_per_s": ours, "official_fp32_images_per_s": official, "ratio": ours / official}
        log(f"  batch {batch_size:4d}: recipe {ours:8.0f} images/s, official-style {official:8.0f}  -> {ours / official:.2f}x")
    return result


def check_compiled(device: torch.device, model: str, official: float) -> dict:
    """The recipe with each stage compiled (torch.compile); last, since compiling takes a while."""
    compiled, epochs = recipe_images_per_s(device, model, 120, compile=True)
    log(f"  mixuplib recipe, compiled stages: {compiled:9.0f} images/s  -> {compiled / official:.2f}x the official loop")
    return {"recipe_compiled_images_per_s": compiled, "recipe_compiled_epochs_images_per_s": epochs,
            "ratio_compiled": compiled / official}


# 3. Host-device synchronisations per training step ---------------------------------------

def methods_for(split: data.Split, device: torch.device) -> dict:
    """Every training method of mixuplib, built for ``split`` (unlabelled data: its test images)."""
    shape, k = tuple(split.x_train.shape[1:]), split.num_classes
    width = models.build("preact_resnet18", shape, k)[:-1](torch.zeros(2, *shape)).shape[1]
    crop = lambda v, g: random_crop_flip(v, g)  # noqa: E731
    return {
        "ERM": lambda: mx.ERM(),
        "input mixup": lambda: mx.InputMixup(1.0),
        "manifold mixup": lambda: ManifoldMixup(2.0, (0, 1, 2)),
        "AdaMixup": lambda: adamixup.AdaMixup(adamixup.PolicyRegionGenerator(adamixup.small_policy_body(shape[0], 32), 32),
                                              adamixup.IntrusionDiscriminator(width)),
        "ICT": lambda: ssl.ICT(split.x_test, models.build("preact_resnet18", shape, k).to(device), batch_size=64,
                               rampup_steps=10),
        "MixMatch": lambda: ssl.MixMatch(split.x_test, crop, k, batch_size=64, rampup_steps=10),
        # once more: a sync seen only in the process's first training run is a one-time set-up
        "ERM (again, last)": lambda: mx.ERM(),
    }


def watched(batches, counts: list, warmup: int = 2):
    """The training batches, with CUDA's sync debugging on from step ``warmup`` to the last
    step's end: the window covers data, mixing, forward, backward and the optimiser step."""

    def epoch(order, augment):
        for i, batch in enumerate(batches(order, augment)):
            if i == warmup:
                torch.cuda.set_sync_debug_mode("warn")
                counts.append("window-open")
            yield batch
        torch.cuda.set_sync_debug_mode(0)

    return epoch


def check_sync(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"skipped": "no CUDA device: host-device syncs exist only on a GPU"}
    split = data.fake_cifar("cifar10", 64 * 8, 256).to(device)
    results = {}
    for name, make in methods_for(split, device).items():
        mx.seed_everything(0, deterministic=False)
        net = models.build("preact_resnet18", tuple(split.x_train.shape[1:]), 10).to(device)
        batches = TensorBatches(split.x_train, split.y_train, 64, drop_last=True, augment=random_crop_flip)
        marks: list = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                mx.fit(net, make(), watched(batches, marks), (split.x_test, split.y_test),
                       mx.Recipe(epochs=1, lr=0.01, milestones=(), amp=True, channels_last=True), seed=0)
                error = None
            except Exception as err:
                error = f"{type(err).__name__}: {err}"
            finally:
                torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
        sites = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in syncs})
        steps = len(batches) - 2
        results[name] = {"steps_watched": steps, "syncs": len(syncs), "syncs_per_step": len(syncs) / steps,
                         "sites": sites, "error": error}
        log(f"  {name:16s} {len(syncs) / steps:5.2f} syncs per step over {steps} steps"
            + (f"  at {', '.join(sites)}" if sites else "") + (f"  ERROR {error}" if error else ""))
    return results


# 4. Real data on the GPU: full Fashion-MNIST, ERM against mixup ----------------------------

def check_fashion_mnist(device: torch.device, model: str, source: str, budget_s: float, images_per_s: float,
                        quick: bool) -> dict:
    full = data.fashion_mnist(ROOT / "data", source=source)
    split = full.subset(256, 128, generator=torch.Generator().manual_seed(0)) if quick else full
    split = split.to(device)
    n = len(split.y_train)
    # Two runs share the budget; each epoch also evaluates 10,000 test images (about a tenth).
    epochs = 2 if quick else max(2, min(60, int(budget_s / 2 * images_per_s / (1.15 * n))))
    milestones = (epochs // 2, (3 * epochs) // 4)
    amp = device.type == "cuda"
    runs = {}
    for name, method in (("ERM", mx.ERM()), ("mixup (alpha = 1)", mx.InputMixup(1.0))):
        start = time.perf_counter()
        recipe = mx.Recipe(model=model, epochs=epochs, batch_size=128, augment=True, lr=0.1, milestones=milestones,
                           weight_decay=5e-4, amp=amp, channels_last=amp)
        _, history = mx.train_on(split, method, seed=0, recipe=recipe)
        sync(device)
        runs[name] = {"last": history.last, "test_error": history.column("test_error"),
                      "test_nll": history.column("test_nll"), "test_ece": history.column("test_ece"),
                      "seconds": time.perf_counter() - start}
        log(f"  {name:18s} test error {history.last['test_error']:5.2f} %, NLL {history.last['test_nll']:.3f}, "
            f"ECE {history.last['test_ece']:.2f} %, {runs[name]['seconds']:.0f} s")
    return {"data": split.name, "train_size": n, "test_size": len(split.y_test), "model": f"{model} (1-channel stem)",
            "epochs": epochs, "milestones": list(milestones), "lr": 0.1, "weight_decay": 5e-4, "batch_size": 128,
            "augment": "crop (pad 4) + flip", "amp": amp, "seeds": [0], "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and the small CNN: the code path in seconds, on any device")
    parser.add_argument("--parts", default="chapters,throughput,sync,fashion_mnist,scaling,compiled")
    parser.add_argument("--chapters", help="comma-separated chapter names (default: all of the smoke profile's)")
    parser.add_argument("--fashion-source", default=str(data.DEBIAN_FASHION_MNIST))
    parser.add_argument("--fashion-budget", type=float, default=170.0, help="seconds for the two Fashion-MNIST runs")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = "small_cnn" if args.quick else "preact_resnet18"
    out = Path(args.out)
    parts = args.parts.split(",")
    known = ["chapters", "throughput", "sync", "fashion_mnist", "scaling", "compiled"]
    if set(parts) - set(known):
        parser.error(f"--parts takes {', '.join(known)}; got {sorted(set(parts) - set(known))}")
    report = Report(out / "gpu_check.json", device)
    log(f"gpu_check on {describe(device)}, torch {torch.__version__}")
    started = time.perf_counter()
    images_per_s = 2000.0
    if "chapters" in parts:
        log("1. the smoke profile of every chapter")
        report.add("chapters", check_chapters(device, args.chapters.split(",") if args.chapters else None))
    if "throughput" in parts:
        log(f"2. training-step throughput, {model}, batch 128")
        throughput = check_throughput(device, model, args.quick)
        images_per_s = throughput["recipe_images_per_s"]
        report.add("throughput", throughput)
    if "sync" in parts:
        log("3. host-device syncs per training step")
        report.add("sync", check_sync(device))
    if "fashion_mnist" in parts:
        log("4. full Fashion-MNIST, ERM against mixup")
        result = check_fashion_mnist(device, model, args.fashion_source, args.fashion_budget, images_per_s, args.quick)
        report.add("fashion_mnist", result)
        (out / "fashion_mnist.json").write_text(json.dumps({"device": describe(device), "torch": torch.__version__,
                                                             **result}, indent=2) + "\n")
    if "scaling" in parts and device.type == "cuda":
        log("5. throughput against batch size")
        report.add("scaling", check_scaling(device, model))
    if "compiled" in parts and device.type == "cuda" and "throughput" in report.record["parts"]:
        log("6. the recipe with compiled stages")
        official = report.record["parts"]["throughput"]["official_fp32_images_per_s"]
        report.add("compiled", check_compiled(device, model, official))
    log(f"done in {time.perf_counter() - started:.0f} s -> {out / 'gpu_check.json'}")
    failed = [n for n, r in report.record["parts"].get("chapters", {}).items() if not r["ok"]]
    return 1 if failed else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
