"""The batch runner: execute the book's chapters with papermill under a profile.

    python -m mixuplib.book run --profile embedded                 # every chapter, committed outputs
    python -m mixuplib.book run --profile paper --chapter 02_input_mixup
    python -m mixuplib.book run --profile embedded --jobs 1        # one chapter at a time
    python -m mixuplib.book run --chapter 01_erm_to_mixup --set seeds=[100] --output-dir /tmp/out
    python -m mixuplib.book run --profile paper --executor slurm --shard seeds   # one Slurm job per seed
    python -m mixuplib.book merge --profile paper --chapter 03_manifold_mixup     # the shards into one record
    python -m mixuplib.book replicate [--chapter NAME]   # do the findings hold with seeds + 100, and unpinned?
    python -m mixuplib.book params --profile paper --chapter 02_input_mixup > p.yaml   # for papermill -f p.yaml
    python -m mixuplib.book data                          # Fashion-MNIST from Debian, else downloaded

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
A failing finding stops a chapter only in the book's own run, the profile's parameters unchanged;
with ``--set`` the chapter finishes and marks what does not hold.

``--executor slurm`` runs each chapter, or each shard of one (``--shard``), as a job of a
scheduler instead; :mod:`mixuplib.cluster` holds that machinery and the merging of shards.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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

from . import cluster, numerics, runcache
from .claims import CHECK_ENV
from .profiles import chapter_parameters, load_profiles, parameters_yaml, resolve, spec_parameters
from .results import RESULTS_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent


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


def _on_gpu(spec: dict) -> bool:
    return str((spec.get("parameters") or {}).get("device", "cpu")).startswith("cuda")


def _jobs_here(spec: dict, jobs: int | None) -> int:
    """``jobs`` checked against this machine: one per visible GPU, or one per core (the default)."""
    if _on_gpu(spec):
        gpus = visible_gpus()
        return _check_jobs(jobs, len(gpus), f"one per visible GPU, {len(gpus)} visible")
    return _check_jobs(jobs, available_cores(), f"one single-threaded kernel per core, {available_cores()} cores")


def run_profile(profile: str, chapters: list[str] | None = None, *, notebooks: Path = ROOT / "notebooks",
                profiles: dict | None = None, jobs: int | None = None, overrides: dict | None = None,
                output_dir: str | Path | None = None, reader_run: bool = False) -> int:
    """Run ``chapters`` (default: all of the profile's), ``jobs`` at a time; return an exit status.

    ``overrides`` replace parameters of every chapter run (after the profile's own); with any,
    or with ``reader_run``, the run is a reader's (:data:`~mixuplib.claims.CHECK_ENV` is "0"):
    findings that do not hold are marked in each chapter, and stop nothing. ``output_dir``
    replaces the profile's folder for the executed notebooks, and their results JSON goes to
    ``<output_dir>/results`` (unless ``MIXUPLIB_RESULTS_DIR`` names a folder), so a reader's run
    never overwrites the book's own results.

    The profile's ``summaries`` (chapters that read the others' records) start when the other
    chapters have ended; each gets ``records_dir``, the folder this run's records went to, where
    that is not the profile's own.

    Prints one line per chapter as it finishes (its wall time and output), then the total.
    Chapters that succeed keep their outputs even when another fails; the status is 1 if any
    failed, 2 for an unknown profile or chapter or a bad ``jobs``.
    """
    profiles = profiles or load_profiles()
    try:
        spec, names = resolve(profile, chapters, profiles)
        jobs = _jobs_here(spec, jobs)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    on_gpu = _on_gpu(spec)
    gpus = visible_gpus() if on_gpu else []
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
    jobs = min(jobs, len(names))
    # A run into another folder (a reader's, the replication's) writes its results beside its notebooks.
    results_here = {RESULTS_DIR_ENV: str(out_dir / "results")} if output_dir and not os.environ.get(RESULTS_DIR_ENV) else {}
    with _claims_checked(not overrides and not reader_run), _environment(**results_here), \
            ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=initializer, initargs=initargs) as pool:
        # A summary (the profile's "summaries") reads the other chapters' records: it starts when they have ended, and
        # reads them where this run wrote them.
        later = [name for name in names if name in spec.get("summaries", [])]
        written = os.environ.get(RESULTS_DIR_ENV) or results_here.get(RESULTS_DIR_ENV)
        for batch in ([name for name in names if name not in later], later):
            futures = {}
            for name in batch:
                extra = {"records_dir": written} if name in later and written else {}
                parameters = spec_parameters(spec, name, {**(overrides or {}), **extra})  # what `params` prints
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


@contextlib.contextmanager
def _environment(**changes: str | None):
    """``os.environ`` with ``changes`` inside (``None`` removes a variable), as the caller had it
    afterwards. Workers and the kernels they start inherit it."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        _put(changes)
        yield
    finally:
        _put(saved)


def _put(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _claims_checked(own_run: bool):
    """The book's own run (``own_run``: the profile's parameters unchanged), whose failing
    findings stop its kernels, or a reader's run, which finishes and marks them."""
    return _environment(**{CHECK_ENV: "1" if own_run else "0"})


def _run_folder(notebooks: Path, profile: str, output_dir: str | Path | None) -> Path:
    """Where a scheduled run keeps its shards and submitit's logs: ``output_dir``, or ``runs/<profile>``.

    Not the profile's ``output_dir``: the embedded profile's is ``notebooks/``, and shards
    there would sit beside the chapters.
    """
    return (notebooks.parent / (output_dir or Path("runs") / profile)).resolve()


def schedule_profile(profile: str, chapters: list[str] | None = None, *, scheduler: cluster.Scheduler = cluster.Scheduler(),
                     shard: list[str] | None = None, overrides: dict | None = None, output_dir: str | Path | None = None,
                     shard_overrides: dict[str, dict] | None = None, notebooks: Path = ROOT / "notebooks",
                     profiles: dict | None = None) -> int:
    """Run ``chapters``, or their shards, as submitit jobs; return an exit status.

    ``scheduler`` (:class:`~mixuplib.cluster.Scheduler`) says where the jobs run: on Slurm, or
    as submitit's local processes on this machine. Without ``shard`` each
    chapter is one job writing where :func:`run_profile` writes. With ``shard`` (``["seeds"]``
    or ``["setups", "seeds"]``) each chapter becomes one job per seed (and setup) under
    ``<run folder>/shards/<chapter>/``, the run folder being ``output_dir`` or
    ``runs/<profile>``; shards that already have results are not run again. submitit's logs
    go to ``<run folder>/submitit``.

    ``shard_overrides`` (``{"01_erm_to_mixup/seed2": {parameter: value}}``) change the
    parameters of single shards: a test makes one shard fail this way. The status is 0, 1 if a
    job failed (run the same call again to run only the shards without results), 2 for a bad
    argument.
    """
    profiles = profiles or load_profiles()
    try:
        spec, names = resolve(profile, chapters, profiles)
        # A summary reads the chapters' records, which exist only once the jobs (and the merge of shards) are done.
        for name in [n for n in names if n in spec.get("summaries", [])]:
            print(f"{name} reads the other chapters' records and is not scheduled: once they are written (after "
                  f"`merge` for sharded chapters), run `python -m mixuplib.book run --profile {profile} --chapter {name}`",
                  flush=True)
        names = [n for n in names if n not in spec.get("summaries", [])]
        # Slurm queues what it cannot start yet: by default every job is submitted at once.
        jobs = _jobs_here(spec, scheduler.jobs) if scheduler.executor == "submitit-local" else scheduler.jobs
        out_dir = (notebooks.parent / (output_dir or spec["output_dir"])).resolve()
        run_folder = _run_folder(notebooks, profile, output_dir)
        if not shard:
            todo = [cluster.Job(name, notebooks / f"{name}.ipynb", out_dir / f"{name}.ipynb", spec_parameters(spec, name, overrides))
                    for name in names]
        else:
            sharded = {name: cluster.shard_jobs(name, notebooks / f"{name}.ipynb", spec_parameters(spec, name, overrides), shard,
                                                run_folder / "shards" / name) for name in names}
            unknown = set(shard_overrides or {}) - {job.name for shards in sharded.values() for job in shards}
            if unknown:
                raise ValueError(f"shard_overrides names no shard of this run: {sorted(unknown)}")
            todo = []
            for name, shards in sharded.items():
                shards = [dataclasses.replace(job, parameters={**job.parameters, **shard_overrides[job.name]})
                          if job.name in (shard_overrides or {}) else job for job in shards]
                pending = cluster.pending_shards(shards, run_folder / "shards" / name)
                if len(pending) < len(shards):
                    print(f"{name}: {len(shards) - len(pending)} of {len(shards)} shards already have results; "
                          f"running the other {len(pending)}", flush=True)
                todo += pending
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if not todo:
        print("nothing to run" + (": every shard has results; merge them with `python -m mixuplib.book merge`" if shard
                                  else ""), flush=True)
        return 0
    if spec.get("pinned_numerics"):
        numerics.pin_environment()  # the jobs' processes, and the kernels they start, inherit it
    executor = cluster.make_executor(scheduler, run_folder / "submitit",
                                     gpus_per_job=int(_on_gpu(spec)) if scheduler.gpus_per_job is None else scheduler.gpus_per_job)
    started, at_once = time.perf_counter(), jobs or len(todo)
    with _claims_checked(not overrides and not shard):  # a shard holds some of the seeds: never the book's own run
        failed = cluster.run_jobs(todo, executor, _run_quietly, at_once=at_once)
    print(f"{'total':32s} {time.perf_counter() - started:7.1f} s  ({len(todo)} jobs, {at_once} at a time)", flush=True)
    if failed:
        again = "; run the same command again to run only the shards without results" if shard else ""
        print(f"{len(failed)} of {len(todo)} jobs failed: {', '.join(failed)}{again}", file=sys.stderr)
        return 1
    return 0


def merge_chapter(profile: str, chapter: str, *, notebooks: Path = ROOT / "notebooks", profiles: dict | None = None,
                  output_dir: str | Path | None = None) -> int:
    """Merge a chapter's shards into its record and render its summary table; return an exit status.

    The record goes where an unsharded run of the profile writes the chapter's results (its
    ``results_dir``, or ``MIXUPLIB_RESULTS_DIR``), so the chapters' comparison tables find it;
    the summary (:func:`mixuplib.cluster.render_summary`) goes to
    ``<run folder>/<chapter>.merged.html``. The status is 1 while a shard has no results or
    the shards disagree (the message names them), 2 for an unknown profile or chapter.
    """
    profiles = profiles or load_profiles()
    try:
        spec, _ = resolve(profile, [chapter], profiles)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    source = notebooks / f"{chapter}.ipynb"
    run_folder = _run_folder(notebooks, profile, output_dir)
    results_dir = notebooks / cluster.notebook_parameter(source, spec_parameters(spec, chapter), "results_dir")
    try:
        path = cluster.merge_shards(source, run_folder / "shards" / chapter, results_dir.resolve())
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    record = json.loads(path.read_text())
    page = cluster.write_summary(record, run_folder / f"{chapter}.merged.html")
    print(f"merged {len(record['shards'])} shards, seeds {record['seeds']} -> {os.path.relpath(path)}", flush=True)
    print(f"summary table -> {os.path.relpath(page)}", flush=True)
    return 0


def _findings(results: Path) -> list[dict] | None:
    """The findings a chapter's results file lists, or None where the chapter did not finish."""
    return json.loads(results.read_text())["claims"] if results.exists() else None


def replicate(profile: str = "embedded", chapters: list[str] | None = None, *, notebooks: Path = ROOT / "notebooks",
              profiles: dict | None = None, jobs: int | None = None, seed_offset: int = 100,
              output_dir: str | Path | None = None) -> dict:
    """Run ``chapters`` twice as a reader might and count which of their findings hold.

    - **seeds + offset**: pinned, each chapter's own seeds moved by ``seed_offset`` (a disjoint
      set), ``jobs`` chapters at a time;
    - **unpinned**: the profile's parameters, every core and the CPU's own kernels, one
      chapter at a time.

    Both are readers' runs, so every chapter finishes and lists what does not hold. Prints a
    table (chapter, findings, held in each run, the statements that did not) and returns it as
    ``{chapter: {"seeds": ..., "findings": n, run: {"held": k, "failed": [...]}}}``, also
    written to ``<output_dir>/replication.json`` (default ``runs/replication``).
    """
    profiles = profiles or load_profiles()
    spec, names = resolve(profile, chapters, profiles)
    names = [name for name in names if name not in spec.get("summaries", [])]  # they train nothing: no findings to rerun
    folder = Path(output_dir or ROOT / "runs" / "replication").resolve()
    report: dict = {}
    by_seeds: dict[tuple, list[str]] = {}
    for name in names:
        seeds = cluster.notebook_parameter(notebooks / f"{name}.ipynb", spec_parameters(spec, name), "seeds")
        report[name] = {"seeds": list(seeds)}
        by_seeds.setdefault(tuple(seeds), []).append(name)
    unpinned_profiles = {**profiles, profile: {**spec, "pinned_numerics": False}}
    runs = {f"seeds + {seed_offset}": [(group, {"seeds": [s + seed_offset for s in seeds]}, profiles, jobs)
                                       for seeds, group in by_seeds.items()],
            "unpinned": [(names, {}, unpinned_profiles, 1)]}
    for run, calls in runs.items():
        slug = run.replace(" ", "").replace("+", "plus")
        # Unpinned: the CPU's own numerics (every core, its own kernel family), as a reader's machine has them.
        unpin = {k: None for k in numerics.PINNED_ENV} if run == "unpinned" else {}
        with _environment(**{RESULTS_DIR_ENV: str(folder / slug / "results")}, **unpin):
            for group, overrides, these_profiles, at_once in calls:
                run_profile(profile, group, notebooks=notebooks, profiles=these_profiles, jobs=at_once,
                            overrides=overrides, output_dir=folder / slug / "notebooks", reader_run=True)
        for name in names:
            found = _findings(folder / slug / "results" / f"{name}.json")
            report[name][run] = (None if found is None else
                                 {"held": sum(c["holds"] for c in found), "failed": [c["statement"] for c in found if not c["holds"]]})
            if found is not None:
                report[name].setdefault("findings", len(found))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "replication.json").write_text(json.dumps(report, indent=2) + "\n")
    _print_replication(report, list(runs))
    return report


def _print_replication(report: dict, runs: list[str]) -> None:
    print(f"{'chapter':24s} {'seeds':>12s} {'findings':>9s} " + " ".join(f"{r:>14s}" for r in runs))
    for name, row in report.items():
        cells = []
        for run in runs:
            cells.append("did not run" if row.get(run) is None else f"{row[run]['held']} held")
        print(f"{name:24s} {str(row['seeds']):>12s} {str(row.get('findings')):>9s} " + " ".join(f"{c:>14s}" for c in cells))
    for name, row in report.items():
        for run in runs:
            for statement in (row.get(run) or {}).get("failed", []):
                print(f"does not hold, {name}, {run}: {statement}")


def fetch_data(root: Path, *, mirror: str | None = None, debian: Path | None = None) -> int:
    """Make Fashion-MNIST readable offline under ``root`` (:func:`mixuplib.data.fetch_fashion_mnist`,
    from ``debian``, default Debian's own folder, or ``mirror``); print one line saying where it
    came from. The other embedded data sets are generated or ship with a package."""
    from . import data

    debian = debian or data.DEBIAN_FASHION_MNIST
    try:
        origin = data.fetch_fashion_mnist(root, debian, mirror=mirror)
    except (OSError, RuntimeError, ValueError) as err:
        print(f"Fashion-MNIST: could not be had ({type(err).__name__}: {err}); install Debian's dataset-fashion-mnist "
              f"or run this where {mirror or 'the internet'} can be reached", file=sys.stderr)
        return 1
    where = root.resolve() / "FashionMNIST" / "raw"
    where = os.path.relpath(where) if where.is_relative_to(Path.cwd()) else str(where)
    said = {"already there": f"already in {where}",
            "Debian": f"from Debian's dataset-fashion-mnist ({debian}) into {where}",
            "downloaded": f"Debian's dataset-fashion-mnist is not installed: downloaded through torchvision into {where}, "
                          f"each file's content checked against its SHA-256"}
    print(f"Fashion-MNIST: {said[origin]}")
    return 0


def _assignments(items: list[str], option: str, parser: argparse.ArgumentParser) -> dict:
    """``NAME=VALUE`` strings as a dict, each VALUE read as YAML."""
    assigned = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            parser.error(f"{option} takes NAME=VALUE with NAME a parameter name, got {item!r}")
        assigned[name] = yaml.safe_load(value)
    return assigned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixuplib.book", description="Execute the book's chapters under a profile.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute chapters with papermill")
    run.add_argument("--profile", default="embedded")
    run.add_argument("--chapter", action="append", help="a chapter name (repeatable); default: all of the profile's")
    run.add_argument("--jobs", type=int, default=None,
                     help="chapters (or jobs) at a time (default: one per core for CPU profiles, one per visible GPU for "
                          "GPU profiles; with --executor slurm, every job)")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                     help="override a parameter of every chapter run; VALUE is read as YAML (repeatable)")
    run.add_argument("--output-dir", help="write the executed notebooks here instead of the profile's folder "
                                          "(with a submitit executor also the run folder of shards and logs, default runs/PROFILE)")
    run.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                     help="local: a process pool on this machine (default); slurm: each chapter or shard a Slurm job, "
                          "through submitit; submitit-local: those same jobs as processes here, a dry run")
    run.add_argument("--shard", type=lambda v: v.split(","), metavar="seeds|setups,seeds",
                     help="split each chapter into one job per seed (and setup); needs a submitit executor")
    run.add_argument("--slurm-partition", help="the Slurm partition of the jobs")
    run.add_argument("--gpus-per-job", type=int, help="GPUs per job (default: 1 for a GPU profile, else 0)")
    run.add_argument("--timeout-min", type=int, help=f"a job's time limit in minutes (default {cluster.DEFAULT_TIMEOUT_MIN})")
    run.add_argument("--slurm-option", action="append", default=[], metavar="NAME=VALUE",
                     help="another sbatch setting in submitit's name, e.g. account=ABC or mem_gb=32 (repeatable)")
    merge = sub.add_parser("merge", help="merge a chapter's shards into its results and render their summary table")
    merge.add_argument("--profile", default="embedded")
    merge.add_argument("--chapter", required=True)
    merge.add_argument("--output-dir", help="the run folder the shards were written to (default runs/PROFILE)")
    again = sub.add_parser("replicate", help="run chapters with seeds + 100 (pinned) and unpinned; count the findings "
                                             "that hold in each (long: the book twice)")
    again.add_argument("--profile", default="embedded")
    again.add_argument("--chapter", action="append", help="a chapter name (repeatable); default: all of the profile's")
    again.add_argument("--jobs", type=int, default=None, help="chapters at a time in the pinned run (default: one per core)")
    again.add_argument("--seed-offset", type=int, default=100, help="added to each chapter's seeds (default 100)")
    again.add_argument("--output-dir", help="where the runs and replication.json go (default runs/replication)")
    sub.add_parser("profiles", help="list the profiles")
    params = sub.add_parser("params", help="print a chapter's parameters under a profile as YAML, for papermill -f")
    params.add_argument("--profile", default="embedded")
    params.add_argument("--chapter", required=True)
    params.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="overrides",
                        help="override a parameter, as run --set does (repeatable)")
    fetch = sub.add_parser("data", help="make the embedded profile's Fashion-MNIST readable offline: Debian's files, "
                                        "else torchvision's download (checksummed)")
    fetch.add_argument("--root", default=str(ROOT / "data"), help="the chapters' data_root (default: data/ of the checkout)")
    fetch.add_argument("--mirror", help="an http(s):// URL prefix to download from (default: torchvision's mirror)")
    fetch.add_argument("--debian", help="where Debian's dataset-fashion-mnist put its files (default: its own folder)")
    args = parser.parse_args(argv)
    if args.command == "profiles":
        for name, spec in load_profiles().items():
            print(f"{name:10s} {spec['description']}")
        return 0
    if args.command == "params":
        try:
            chosen = chapter_parameters(args.profile, args.chapter, _assignments(args.overrides, "--set", parser))
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        print(f"# python -m mixuplib.book params --profile {args.profile} --chapter {args.chapter}: the parameters "
              f"the runner injects;\n# run them with: papermill notebooks/{args.chapter}.ipynb OUT.ipynb --cwd notebooks -f THIS_FILE")
        print(parameters_yaml(chosen), end="")
        return 0
    if args.command == "data":
        return fetch_data(Path(args.root), mirror=args.mirror, debian=Path(args.debian) if args.debian else None)
    # Runs already trained here (by another chapter, or an earlier run) are loaded, not retrained.
    os.environ.setdefault(runcache.CACHE_ENV, str(ROOT / ".cache" / "runs"))
    output_dir = Path(args.output_dir).resolve() if args.output_dir else None
    if args.command == "merge":
        return merge_chapter(args.profile, args.chapter, output_dir=output_dir)
    if args.command == "replicate":
        if args.seed_offset <= 0:
            parser.error(f"--seed-offset must be > 0 (a seed set disjoint from the book's), got {args.seed_offset}")
        try:
            report = replicate(args.profile, args.chapter, jobs=args.jobs, seed_offset=args.seed_offset, output_dir=output_dir)
        except ValueError as err:
            print(err, file=sys.stderr)
            return 2
        return 0 if all(row.get(run) and not row[run]["failed"] for row in report.values()
                        for run in row if run not in ("seeds", "findings")) else 1
    overrides = _assignments(args.overrides, "--set", parser)
    slurm_options = _assignments(args.slurm_option, "--slurm-option", parser)
    scheduler_only = {"--shard": args.shard, "--slurm-partition": args.slurm_partition,
                      "--gpus-per-job": args.gpus_per_job, "--timeout-min": args.timeout_min,
                      "--slurm-option": slurm_options}
    if args.executor == "local":
        given = [option for option, value in scheduler_only.items() if value not in (None, {})]
        if given:
            parser.error(f"{', '.join(given)}: only with --executor slurm or submitit-local; "
                         f"--executor local is this machine's process pool")
        return run_profile(args.profile, args.chapter, jobs=args.jobs, overrides=overrides, output_dir=output_dir)
    try:
        scheduler = cluster.Scheduler(args.executor, jobs=args.jobs, gpus_per_job=args.gpus_per_job,
                                      timeout_min=cluster.DEFAULT_TIMEOUT_MIN if args.timeout_min is None else args.timeout_min,
                                      partition=args.slurm_partition, slurm_options=slurm_options)
    except ValueError as err:
        parser.error(str(err))
    return schedule_profile(args.profile, args.chapter, scheduler=scheduler, shard=args.shard, overrides=overrides,
                            output_dir=output_dir)


if __name__ == "__main__":
    sys.exit(main())
