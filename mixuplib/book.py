"""The batch runner: execute the book's chapters with papermill under a profile.

    python -m mixuplib.book run --profile embedded                 # every chapter, committed outputs
    python -m mixuplib.book run --profile paper --chapter 02_input_mixup
    python -m mixuplib.book run --profile embedded --jobs 1        # one chapter at a time
    python -m mixuplib.book run --chapter 01_erm_to_mixup --set seeds=[0] --output-dir /tmp/out

Profiles live in ``mixuplib/profiles.yml``. A profile with ``pinned_numerics: true`` (the
embedded and smoke profiles) runs every kernel under :data:`mixuplib.numerics.PINNED_ENV`:
one thread and the AVX2 kernel family, whatever the caller's environment held, so the outputs
are the same bytes on any x86-64 machine. Chapters then run in parallel, one single-threaded
kernel per core (``--jobs``, default: the cores this process may use). A GPU profile runs one
chapter per visible GPU, each worker seeing only its own (``CUDA_VISIBLE_DEVICES``).

Each chapter executes into a temporary file that replaces the output notebook only when the
whole chapter succeeded, so a failure never leaves a half-written notebook behind. The runner
prints one line per chapter with its wall time, then the total; the exit status is non-zero
on failure, and the message names the chapter and the cell (a failed claim names the claim).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

from . import numerics

PROFILES = Path(__file__).with_name("profiles.yml")
ROOT = Path(__file__).resolve().parent.parent


def load_profiles(path: Path = PROFILES) -> dict:
    """The profiles as a dict: ``{name: {description, output_dir, parameters, chapters, ...}}``."""
    return yaml.safe_load(Path(path).read_text())


class ChapterFailed(RuntimeError):
    """A chapter raised; the message names the chapter and the failing cell."""


def run_chapter(source: Path, output: Path, parameters: dict, *, kernel: str = "python3") -> float:
    """Execute the notebook ``source`` with ``parameters`` into ``output``; return the wall time.

    The run happens in ``source``'s folder (relative paths in a chapter mean the same in
    every profile) and writes ``output`` atomically. The kernel inherits this process's
    environment (see :func:`run_profile` for the pinned numerics).
    """
    import logging

    import papermill

    # jupyter_client and ipykernel report routine transport events as warnings; the reader
    # of the runner's output wants one line per chapter.
    logging.getLogger("papermill").setLevel(logging.ERROR)
    logging.getLogger("traitlets").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="jupyter_client")
    warnings.filterwarnings("ignore", module="zmq")

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(prefix=f".{source.stem}-", suffix=".ipynb", dir=output.parent, delete=False) as tmp:
        partial = Path(tmp.name)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(str(source), str(partial), parameters=parameters, cwd=str(source.parent),
                                   kernel_name=kernel, progress_bar=False, log_output=False)
        _strip_papermill_noise(partial)
        partial.replace(output)
    except papermill.PapermillExecutionError as err:
        where = _describe_failing_cell(partial)
        raise ChapterFailed(f"chapter {source.stem} failed in {where}: {err.ename}: {err.evalue}") from None
    except Exception as err:
        raise ChapterFailed(f"chapter {source.stem} failed: {type(err).__name__}: {err}") from None
    finally:
        partial.unlink(missing_ok=True)
    return time.perf_counter() - start


def _describe_failing_cell(executed: Path) -> str:
    """'cell N (first line)', N counting the chapter's own cells from 1 (without the cells
    papermill adds), so it matches what a reader sees when opening the chapter."""
    cells = json.loads(executed.read_text())["cells"]
    failing = next(c for c in cells if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    added = ("injected-parameters", "papermill-error-cell-tag")
    own = [c for c in cells if not set(added) & set(c.get("metadata", {}).get("tags", []))]
    first_line = ("".join(failing["source"]).strip().splitlines() or [""])[0]
    return f"cell {own.index(failing) + 1} ({first_line[:60]!r})"


def _strip_papermill_noise(path: Path) -> None:
    """Drop per-run timestamps papermill adds, so re-running an unchanged chapter changes
    only what the chapter itself printed."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    nb.get("metadata", {}).pop("papermill", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _run_quietly(source: Path, output: Path, parameters: dict) -> float:
    """:func:`run_chapter` in a pool worker, with the kernel's own log kept off the terminal.

    A kernel writes its start-up notices (e.g. ipykernel's note on unencrypted local TCP) to
    the stderr it inherits. What a chapter's cells print reaches the notebook, not that
    stream, so the log is shown only when the chapter fails.
    """
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            return run_chapter(source, output, parameters)
        except ChapterFailed as err:
            log.seek(0)
            lines = [line for line in log.read().splitlines() if "without encryption" not in line]
            tail = "\n".join(lines)[-2000:].strip()
            raise ChapterFailed(f"{err}\nkernel log:\n{tail}" if tail else str(err)) from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def visible_gpus() -> list[str]:
    """The GPUs a worker can be given: ``CUDA_VISIBLE_DEVICES`` if set, else every one torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _worker_takes_gpu(gpus) -> None:
    """Pool initializer: each worker process keeps one GPU for all the chapters it runs."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus.get()


def _check_jobs(jobs: int | None, limit: int, what: str) -> int:
    if jobs is None:
        return max(limit, 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= max(limit, 1):
        raise ValueError(f"jobs must be an integer from 1 to {max(limit, 1)} ({what}), got {jobs!r}")
    return jobs


def run_profile(profile: str, chapters: list[str] | None = None, *, notebooks: Path = ROOT / "notebooks",
                profiles: dict | None = None, jobs: int | None = None, overrides: dict | None = None,
                output_dir: str | Path | None = None) -> int:
    """Run ``chapters`` (default: all of the profile's), ``jobs`` at a time; return an exit status.

    ``overrides`` replace parameters of every chapter run (after the profile's own);
    ``output_dir`` replaces the profile's folder for the executed notebooks.

    Prints one line per chapter as it finishes (its wall time and output), then the total.
    Chapters that succeed keep their outputs even when another fails; the status is 1 if any
    failed, 2 for an unknown profile or chapter or a bad ``jobs``.
    """
    profiles = profiles or load_profiles()
    if profile not in profiles:
        print(f"unknown profile {profile!r}; choose from {sorted(profiles)}", file=sys.stderr)
        return 2
    spec = profiles[profile]
    names = chapters or list(spec["chapters"])
    unknown = [n for n in names if n not in spec["chapters"]]
    if unknown:
        print(f"profile {profile!r} has no chapter {unknown}; it has {list(spec['chapters'])}", file=sys.stderr)
        return 2
    shared = spec.get("parameters") or {}
    on_gpu = str(shared.get("device", "cpu")).startswith("cuda")
    gpus = visible_gpus() if on_gpu else []
    try:
        if on_gpu:
            jobs = _check_jobs(jobs, len(gpus), f"one per visible GPU, {len(gpus)} visible")
        else:
            jobs = _check_jobs(jobs, available_cores(), f"one single-threaded kernel per core, {available_cores()} cores")
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if spec.get("pinned_numerics"):
        numerics.pin_environment()  # inherited by every worker and every kernel they start

    out_dir = (notebooks.parent / (output_dir or spec["output_dir"])).resolve()
    context = multiprocessing.get_context("spawn")
    initializer, initargs = None, ()
    if on_gpu and gpus:
        queue = context.Manager().Queue()
        for gpu in gpus[:jobs]:
            queue.put(gpu)
        initializer, initargs = _worker_takes_gpu, (queue,)
    started, total, failed = time.perf_counter(), 0.0, []
    with ProcessPoolExecutor(max_workers=min(jobs, len(names)), mp_context=context, initializer=initializer,
                             initargs=initargs) as pool:
        futures = {}
        for name in names:
            parameters = {**shared, **(spec["chapters"][name] or {}), **(overrides or {})}
            futures[pool.submit(_run_quietly, notebooks / f"{name}.ipynb", out_dir / f"{name}.ipynb", parameters)] = name
        for future in as_completed(futures):
            name = futures[future]
            try:
                seconds = future.result()
            except ChapterFailed as err:
                print(f"FAILED: {err}", file=sys.stderr, flush=True)
                failed.append(name)
                continue
            total += seconds
            print(f"{name:32s} {seconds:7.1f} s  -> {os.path.relpath(out_dir / f'{name}.ipynb')}", flush=True)
    elapsed = time.perf_counter() - started
    print(f"{'total':32s} {elapsed:7.1f} s  ({total:.1f} s of chapter time, {jobs} at a time)", flush=True)
    if failed:
        print(f"{len(failed)} of {len(names)} chapters failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixuplib.book", description="Execute the book's chapters under a profile.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapters with papermill")
    run.add_argument("--profile", default="embedded")
    run.add_argument("--chapter", action="append", help="a chapter name (repeatable); default: all of the profile's")
    run.add_argument("--jobs", type=int, default=None,
                     help="chapters at a time (default: one per core for CPU profiles, one per visible GPU for GPU profiles)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                     help="override a parameter of every chapter run; VALUE is read as YAML (repeatable)")
    run.add_argument("--output-dir", help="write the executed notebooks here instead of the profile's folder")
    sub.add_parser("profiles", help="list the profiles")
    args = parser.parse_args(argv)
    if args.command == "profiles":
        for name, spec in load_profiles().items():
            print(f"{name:10s} {spec['description']}")
        return 0
    overrides = {}
    for item in args.overrides:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            parser.error(f"--set takes NAME=VALUE with NAME a parameter name, got {item!r}")
        overrides[name] = yaml.safe_load(value)
    output_dir = Path(args.output_dir).resolve() if args.output_dir else None
    return run_profile(args.profile, args.chapter, jobs=args.jobs, overrides=overrides, output_dir=output_dir)


if __name__ == "__main__":
    sys.exit(main())
