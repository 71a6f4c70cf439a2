"""What the paper profile would cost on a GPU: an estimate per chapter, from measured throughput.

Nothing here trains. For each chapter, its paper-profile parameters
(:func:`mixuplib.profiles.chapter_parameters`) give the training runs it makes: methods x seeds x
setups, their epochs and the images an epoch passes over. The time of a run is

    epochs x images per epoch / (images per second of the model) x (step cost of the method, x ERM)

with these measured numbers, read from the folder of GPU records (``results/gpu/``, one NVIDIA
H100, torch 2.11):

- images per second: PreAct ResNet-18 at batch 128, the paper recipe (bfloat16 autocast,
  channels_last) and an fp32 loop like the official mixup code, ``results/gpu/gpu_check.json`` ("throughput");
- the step cost of each method as a ratio to ERM on PreAct ResNet-18, ``results/gpu/bench_mixup_cuda.txt`` (b).

Two parts are not measured and are assumptions, said wherever the estimate is shown: the wide
ResNets' throughput is PreAct ResNet-18's scaled by forward FLOPs per image (counted with
``torch.utils.flop_counter``), and PGD adversarial training costs ``steps + 1`` ERM steps (its
passes counted). Evaluation, attacks, the toys and one-epoch checks are left out.

    gpu = measured("results/gpu")
    estimate(gpu)                     # one row per chapter: runs, epochs, images, GPU-hours
    chapter_table("02_input_mixup", gpu, caption=...)   # its runs, group by group, as an HTML table
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import models
from .profiles import chapter_parameters, load_profiles
from .results import Table, html_table

__all__ = ["measured", "step_ratios", "forward_flops", "runs_of", "estimate", "chapter_table", "show_estimate", "markdown_table"]

CIFAR_TRAIN = 50_000
BASE = "preact_resnet18"
METHODS = ("ERM", "input mixup", "manifold mixup", "AdaMixup", "ICT", "MixMatch")


def measured(gpu_dir: str | Path) -> dict:
    """The GPU check's measured throughput (images/s) and per-method step ratios (x ERM).

    Returns ``{"device", "amp", "fp32", "ratios": {method: ratio}}``; raises
    ``FileNotFoundError`` naming the file when ``gpu_dir`` lacks one of the two records.
    """
    folder = Path(gpu_dir)
    for name in ("gpu_check.json", "bench_mixup_cuda.txt"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"gpu_dir must hold the GPU records; {folder / name} is missing")
    check = json.loads((folder / "gpu_check.json").read_text())
    throughput = check["parts"]["throughput"]
    if throughput["model"] != BASE:
        raise ValueError(f"the throughput in {folder / 'gpu_check.json'} is of {throughput['model']!r}, not {BASE!r}")
    return {"device": check["device"], "amp": throughput["recipe_images_per_s"],
            "fp32": throughput["official_fp32_images_per_s"],
            "ratios": step_ratios(folder / "bench_mixup_cuda.txt", "PreAct ResNet-18")}


def step_ratios(bench_file: str | Path, network: str) -> dict[str, float]:
    """Each method's training step as a ratio to ERM's, from part (b) of a ``bench_mixup.py``
    record: the block that follows the line naming ``network`` (e.g. ``"small CNN"``)."""
    text = Path(bench_file).read_text()
    if network not in text:
        raise ValueError(f"network must be one {bench_file} measured, got {network!r}")
    block, ratios = text[text.index(network):], {}
    for method in METHODS:
        found = re.search(rf"^\s+{re.escape(method)}\b.*?([\d.]+) x ERM$", block, re.M)
        if found is None:
            raise ValueError(f"{bench_file} has no step ratio for {method!r} under {network!r}")
        ratios[method] = float(found.group(1))
    return ratios


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
    if chapter == "02_input_mixup":  # ERM, each alpha, two smoothed-label runs, CutMix and the switch where set
        per_setup = 1 + len(p["alphas"]) + (2 if p.get("label_smoothing") else 0) + bool(p.get("cutmix_alpha")) \
            + bool(p.get("switch"))  # CutMix and the switch step about as input mixup does
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
    raise ValueError(f"chapter must be one with a run plan ({', '.join(PLANNED)}), got {chapter!r}")


PLANNED = ("01_erm_to_mixup", "02_input_mixup", "03_manifold_mixup", "04_adamixup", "05_corrupted_labels",
           "06_adversarial", "07_semi_supervised")


def _groups(chapter: str, gpu: dict, flops: dict) -> list[dict]:
    """``chapter``'s run groups, each with its estimated GPU-hours (``flops`` caches FLOPs per model)."""
    if BASE not in flops:
        flops[BASE] = forward_flops(BASE, {})
    groups = runs_of(chapter, chapter_parameters("paper", chapter))
    for g in groups:
        key = f"{g['model']} {json.dumps(g['options'], sort_keys=True)}"
        if key not in flops:
            flops[key] = forward_flops(g["model"], g["options"])
        speed = (gpu["amp"] if g["amp"] else gpu["fp32"]) * flops[BASE] / flops[key]
        g["passed"] = g["runs"] * g["epochs"] * g["images"]
        g["hours"] = g["passed"] / speed * gpu["ratios"][g["method"]] * g["passes"] / 3600
    return groups


def estimate(gpu: dict, chapters: list[str] | None = None) -> list[dict]:
    """One row per chapter of the paper profile (or of ``chapters``): runs, epochs, images passed
    (millions) and estimated GPU-hours on the GPU of ``gpu`` (:func:`measured`)."""
    flops, rows = {}, []
    for chapter in chapters or [c for c in load_profiles()["paper"]["chapters"] if c in PLANNED]:
        groups = _groups(chapter, gpu, flops)
        rows.append({"chapter": chapter, "runs": sum(g["runs"] for g in groups),
                     "epochs": "/".join(str(e) for e in sorted({g["epochs"] for g in groups})),
                     "images": sum(g["passed"] for g in groups) / 1e6, "hours": sum(g["hours"] for g in groups)})
    return rows


def chapter_table(chapter: str, gpu: dict, *, caption: str, label: str | None = None) -> Table:
    """``chapter``'s paper-profile runs group by group, with their estimated GPU-hours and the
    total, as the HTML table its "Beside the paper" section shows."""
    return _groups_table(_groups(chapter, gpu, {}), caption=caption, label=label)


def _groups_table(groups: list[dict], *, caption: str, label: str | None) -> Table:
    def model_name(g):
        options = ", ".join(f"{k} {v}" for k, v in g["options"].items())
        return f"{g['model']} ({options})" if options else g["model"]

    rows = [{"method (as benchmarked)": g["method"] + (f", {g['passes']} passes a step" if g["passes"] > 1 else ""),
             "network": model_name(g), "runs": g["runs"], "epochs": g["epochs"], "images per epoch": f"{g['images']:,}",
             "estimated GPU-hours": f"{g['hours']:.2f}"} for g in groups]
    rows.append({"method (as benchmarked)": "all", "network": "", "runs": sum(g["runs"] for g in groups), "epochs": "",
                 "images per epoch": "", "estimated GPU-hours": f"{sum(g['hours'] for g in groups):.2f}"})
    return html_table(rows, list(rows[0]), caption=caption, label=label)


def show_estimate(chapter: str, gpu_dir: str | Path, *, label: str) -> float | None:
    """Display ``chapter``'s estimate (:func:`chapter_table`) with the book's caption and return
    its GPU-hours; where ``gpu_dir`` lacks the GPU records (a notebook opened on its own, as in
    Colab), print one line saying so and return ``None``."""
    from IPython.display import display

    try:
        gpu = measured(gpu_dir)
    except FileNotFoundError as missing:
        print(f"No estimate of the paper profile's cost here: {missing}")
        return None
    groups = _groups(chapter, gpu, {})  # the FLOPs of each network counted once
    display(_groups_table(groups, label=label, caption=(
        f"Estimated, not measured: the training runs of this chapter's paper profile and their GPU-hours on one "
        f"{gpu['device']}, from the throughput in results/gpu/gpu_check.json (PreAct ResNet-18, batch 128) times each "
        f"method's step ratio to ERM in results/gpu/bench_mixup_cuda.txt. Assumed, not measured: wide ResNets scaled by "
        f"forward FLOPs, PGD training as steps + 1 passes. Evaluation and attacks are left out (mixuplib.cost).")))
    return sum(g["hours"] for g in groups)


def markdown_table(gpu: dict) -> str:
    """The per-chapter estimate as the Markdown table README.md shows."""
    rows = estimate(gpu)
    lines = [f"| chapter | training runs | epochs per run | images passed (millions) | estimated GPU-hours ({gpu['device']}) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['chapter']} | {r['runs']} | {r['epochs']} | {r['images']:,.0f} | {r['hours']:.1f} |" for r in rows]
    total = sum(r["hours"] for r in rows)
    lines.append(f"| all | {sum(r['runs'] for r in rows)} | | {sum(r['images'] for r in rows):,.0f} | {total:.1f} |")
    return "\n".join(lines) + "\n"
