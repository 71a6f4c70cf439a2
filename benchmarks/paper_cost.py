"""What would the paper profile cost on a GPU? An estimate per chapter, from measured throughput.

Nothing here trains. For each chapter, its paper-profile parameters
(``python -m mixuplib.book params --profile paper``) give the training runs it makes: methods x
seeds x setups, their epochs and the images an epoch passes over. The time of a run is

    epochs x images per epoch / (images per second of the model) x (step cost of the method, x ERM)

with these measured numbers (``results/gpu/``, one NVIDIA H100, torch 2.11):

- images per second: PreAct ResNet-18 at batch 128, the paper recipe (bfloat16 autocast,
  channels_last) and an fp32 loop like the official mixup code, ``results/gpu/gpu_check.json`` ("throughput");
- step cost of each method as a ratio to ERM on PreAct ResNet-18, ``results/gpu/bench_mixup_cuda.txt`` (b).

Two parts are not measured and are assumptions, printed as such: the wide ResNets' throughput
is PreAct ResNet-18's scaled by forward FLOPs per image (counted here with
``torch.utils.flop_counter``), and PGD adversarial training costs ``steps + 1`` ERM steps (its
passes counted). Evaluation, attacks, the toys and one-epoch checks are left out.

Run: python benchmarks/paper_cost.py    (prints the Markdown table that README.md shows)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mixuplib import book, models

ROOT = Path(__file__).resolve().parent.parent
GPU = ROOT / "results" / "gpu"
CIFAR_TRAIN = 50_000
BASE = "preact_resnet18"
METHODS = ("ERM", "input mixup", "manifold mixup", "AdaMixup", "ICT", "MixMatch")


def measured() -> dict:
    """The measured throughput (images/s) and per-method step ratios of the GPU check."""
    check = json.loads((GPU / "gpu_check.json").read_text())
    throughput = check["parts"]["throughput"]
    assert throughput["model"] == BASE, throughput["model"]
    bench = (GPU / "bench_mixup_cuda.txt").read_text()
    block = bench[bench.index("PreAct ResNet-18"):]
    ratios = {}
    for method in METHODS:
        found = re.search(rf"^\s+{re.escape(method)}\b.*?([\d.]+) x ERM$", block, re.M)
        ratios[method] = float(found.group(1))
    return {"device": check["device"], "amp": throughput["recipe_images_per_s"],
            "fp32": throughput["official_fp32_images_per_s"], "ratios": ratios}


def forward_flops(model: str, options: dict, num_classes: int = 10) -> int:
    """Forward FLOPs of one 3x32x32 image through ``model``."""
    net = models.build(model, (3, 32, 32), num_classes, **options).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    return counter.get_total_flops()


def runs_of(chapter: str, p: dict) -> list[dict]:
    """The training runs of ``chapter`` under the paper parameters ``p``: one dict per group
    (method as the benchmark names it, runs, model, epochs, images per epoch, amp, and passes:
    forward-backward passes per step of that method)."""
    training = p.get("training", {})
    epochs = training.get("epochs", 200)
    seeds = len(p.get("seeds", [0, 1, 2, 3, 4]))

    def group(method, runs, setup, **changes):
        return {"method": method, "runs": runs, "model": setup["model"], "options": setup.get("model_options", {}),
                "epochs": epochs, "images": CIFAR_TRAIN, "amp": training.get("amp", False), "passes": 1, **changes}

    if chapter == "01_erm_to_mixup":  # true and random labels, each seed; its own fp32 recipe
        setup = {"model": p["memorize_model"]}
        return [group("ERM", 2 * seeds, setup, epochs=p["memorize_epochs"], images=p["memorize_train_size"], amp=False)]
    if chapter == "02_input_mixup":  # ERM and each alpha (and two smoothed-label runs) on every setup
        per_setup = 1 + len(p["alphas"]) + (2 if p.get("label_smoothing") else 0)
        return [g for setup in p["setups"] for g in (group("ERM", seeds, setup),
                                                      group("input mixup", (per_setup - 1) * seeds, setup))]
    if chapter == "03_manifold_mixup":
        extra = len(p.get("ablation", [])) + len(p.get("alpha_sweep", []))
        return [group("ERM", seeds, p["setup"]), group("input mixup", seeds, p["setup"]),
                group("manifold mixup", seeds * (1 + extra), p["setup"])]
    if chapter == "04_adamixup":  # ERM, two mixup alphas, AdaMixup, and the two half-batch controls
        return [group("ERM", 2 * seeds, p["setup"]), group("input mixup", 3 * seeds, p["setup"]),
                group("AdaMixup", seeds, p["setup"])]
    if chapter == "05_corrupted_labels":  # per level: ERM, ERM + dropout, mixup, mixup + dropout
        levels = len(p.get("corruption", [0.2, 0.5, 0.8]))
        return [group("ERM", 2 * levels * seeds, p["setup"]), group("input mixup", 2 * levels * seeds, p["setup"])]
    if chapter == "06_adversarial":
        defended = min(p.get("defence_seed_count", 3), seeds)
        steps = p.get("defence_steps", 3)
        return [group("ERM", seeds, p["setup"]), group("input mixup", seeds, p["setup"]),
                group("manifold mixup", seeds, p["setup"]),
                group("ERM", defended, p["setup"], passes=steps + 1)]  # PGD training: steps attack passes + 1
    if chapter == "07_semi_supervised":  # an epoch is a pass over the labelled images
        labelled = 10 * p["labels_per_class"]
        return [group(method, seeds, p["setup"], images=labelled)
                for method in ("ERM", "input mixup", "ICT", "MixMatch")]
    raise ValueError(f"no run plan for chapter {chapter!r}")


def estimate(gpu: dict) -> list[dict]:
    """One row per chapter: runs, epochs, images passed (millions) and estimated GPU-hours on
    the GPU of ``gpu`` (:func:`measured`)."""
    base = forward_flops(BASE, {})
    flops, rows = {}, []
    for chapter in book.load_profiles()["paper"]["chapters"]:
        p = book.chapter_parameters("paper", chapter)
        hours, runs, epochs, images = 0.0, 0, set(), 0
        for g in runs_of(chapter, p):
            key = (g["model"], json.dumps(g["options"], sort_keys=True))
            if key not in flops:
                flops[key] = forward_flops(g["model"], g["options"])
            speed = (gpu["amp"] if g["amp"] else gpu["fp32"]) * base / flops[key]
            passed = g["runs"] * g["epochs"] * g["images"]
            hours += passed / speed * gpu["ratios"][g["method"]] * g["passes"] / 3600
            runs, images = runs + g["runs"], images + passed
            epochs.add(g["epochs"])
        rows.append({"chapter": chapter, "runs": runs, "epochs": "/".join(str(e) for e in sorted(epochs)),
                     "images": images / 1e6, "hours": hours})
    return rows


def table() -> str:
    gpu = measured()
    rows = estimate(gpu)
    lines = [f"| chapter | training runs | epochs per run | images passed (millions) | estimated GPU-hours ({gpu['device']}) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['chapter']} | {r['runs']} | {r['epochs']} | {r['images']:,.0f} | {r['hours']:.1f} |" for r in rows]
    total = sum(r["hours"] for r in rows)
    lines.append(f"| all | {sum(r['runs'] for r in rows)} | | {sum(r['images'] for r in rows):,.0f} | {total:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
