"""Scale-out: chapters, or shards of a chapter, as jobs of a scheduler; merging the shards.

    python -m mixuplib.book run --profile paper --executor slurm --slurm-partition gpu
    python -m mixuplib.book run --profile paper --chapter 03_manifold_mixup --executor slurm --shard seeds
    python -m mixuplib.book merge --profile paper --chapter 03_manifold_mixup

A paper-profile chapter trains its networks one after the other, for hours each. Split by seed
(and by setup, where a chapter lists ``setups``), the same chapter runs as several jobs at once,
one per GPU the cluster gives. A shard is the chapter itself executed with ``seeds=[s]`` (and
``setups=[one]``) into its own folder ``<run folder>/shards/<chapter>/<shard>/``, which holds the
executed notebook and the shard's results JSON. That file is the shard's status: present means
done. Running the same command again therefore runs only the shards without one, and nothing
finished is redone; a failed shard is reported by name with its error.

``merge`` combines the shards' records into the chapter's one record (the profile's results
folder, where an unsharded run writes it) and renders a summary table of it. Jobs go through
submitit: ``slurm`` submits each with sbatch, ``local`` runs the same jobs as processes on this
machine, which is how the tests exercise the cluster path on a CPU.

The book's runner (:mod:`mixuplib.book`) sits above this module and hands it the function that
executes a notebook, so that a job runs exactly what the local runner runs.
"""

from __future__ import annotations

import ast
import html
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .results import RESULTS_DIR_ENV, Table, html_table, mean_std

__all__ = ["Job", "Scheduler", "SHARD_AXES", "notebook_parameter", "shard_jobs", "pending_shards", "make_executor", "run_jobs",
           "merge_records", "merge_shards", "render_summary", "write_summary"]

DEFAULT_TIMEOUT_MIN = 24 * 60  # a scheduler job's time limit; submitit's own default (5 minutes) fits no chapter
# The runner's executor names, and submitit's for them. The runner's third, "local", is its own
# process pool and no scheduler at all (mixuplib.book.run_profile).
SUBMITIT_CLUSTERS = {"slurm": "slurm", "submitit-local": "local"}


def _check_at_least(name: str, value, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer from {minimum} ({what}), got {value!r}")


@dataclass(frozen=True)
class Scheduler:
    """Where scheduled jobs run, and what each may take.

    Attributes:
        executor: ``"slurm"`` (sbatch) or ``"submitit-local"`` (submitit's local executor: the
            same jobs as processes on this machine, for a dry run and the tests).
        jobs: jobs submitted at once; ``None``: all of them on Slurm, which queues what it
            cannot start, and one per core (or visible GPU) on this machine.
        timeout_min: a job's time limit in minutes.
        gpus_per_job: ``None``: 1 for a GPU profile, else 0.
        partition: the Slurm partition.
        slurm_options: further sbatch settings in submitit's names without the ``slurm_`` prefix
            (``account``, ``mem_gb``, ``constraint``...); the local executor ignores them and the partition.
    """

    executor: str = "slurm"
    jobs: int | None = None
    timeout_min: int = DEFAULT_TIMEOUT_MIN
    gpus_per_job: int | None = None
    partition: str | None = None
    slurm_options: dict | None = None

    def __post_init__(self):
        if self.executor not in SUBMITIT_CLUSTERS:
            raise ValueError(f"executor must be one of {list(SUBMITIT_CLUSTERS)}, got {self.executor!r}")
        _check_at_least("timeout_min", self.timeout_min, 1, "minutes")
        if self.gpus_per_job is not None:
            _check_at_least("gpus_per_job", self.gpus_per_job, 0, "GPUs")
        if self.jobs is not None:
            _check_at_least("jobs", self.jobs, 1, "jobs submitted at once")


SHARD_AXES = ("setups", "seeds")  # the list parameters a chapter run can be split along, outermost first
POLL_S = 0.5  # how often the submitting process looks at its jobs (submitit caches Slurm's answers)
PLAN = "plan.json"  # in a chapter's shard folder: every shard's name and parameters, in merge order


@dataclass(frozen=True)
class Job:
    """One notebook execution: a whole chapter, or one shard of it.

    ``results`` is a shard's own results JSON; its existence means the shard is done. A whole
    chapter writes its results where its profile says, so it has none here (``None``).
    """

    name: str
    source: Path
    output: Path
    parameters: dict
    results: Path | None = None


def notebook_parameter(source: Path, parameters: dict, name: str, *, required: bool = True):
    """``parameters[name]``, or else the default in the chapter's parameters cell.

    Profiles list only what they change, so e.g. the embedded profile's seeds live in the
    notebook. Where neither has it, raises ``ValueError`` naming the chapter and the parameter,
    or returns ``None`` when not ``required``.
    """
    if name in parameters:
        return parameters[name]
    import papermill

    defaults = papermill.inspect_notebook(str(source))
    if name not in defaults:
        if not required:
            return None
        raise ValueError(f"chapter {source.stem} has no parameter {name!r}; it has {sorted(defaults)}")
    return ast.literal_eval(defaults[name]["default"])


def shard_jobs(chapter: str, source: Path, parameters: dict, by: Sequence[str], folder: Path) -> list[Job]:
    """The shards of one chapter run: one job per entry of each parameter in ``by``.

    ``by`` is ``["seeds"]``, ``["setups"]`` or ``["setups", "seeds"]`` (in any order). Shard
    names are ``seed<s>``, ``setup<i>`` (the index in ``setups``) or ``setup<i>-seed<s>``; each
    shard runs with one-element lists and writes its results to ``folder/<shard name>/``. With
    both axes, a chapter without a ``setups`` list (one ``setup``) splits by seed alone, so one
    command can shard a whole profile.
    """
    if not by or set(by) - set(SHARD_AXES) or len(set(by)) != len(by):
        raise ValueError(f"shard takes a comma-separated subset of {list(SHARD_AXES)}, got {','.join(by)!r}")
    axes = {}
    for axis in (a for a in SHARD_AXES if a in by):
        optional = axis == "setups" and len(by) > 1
        values = notebook_parameter(source, parameters, axis, required=not optional)
        if values is None and optional:
            continue
        if not isinstance(values, list) or not values:
            raise ValueError(f"sharding chapter {chapter} by {axis} needs a non-empty list {axis!r}, it has {values!r}")
        axes[axis] = values
    if "seeds" in axes and len(set(axes["seeds"])) != len(axes["seeds"]):
        raise ValueError(f"sharding chapter {chapter} by seeds needs distinct seeds, got {axes['seeds']}")
    setups = list(enumerate(axes["setups"])) if "setups" in axes else [None]
    seeds = axes.get("seeds", [None])
    jobs = []
    for setup in setups:
        for seed in seeds:
            name = "-".join(([f"setup{setup[0]}"] if setup else []) + ([f"seed{seed}"] if seed is not None else []))
            shard = {**parameters, "results_dir": str(folder / name)}
            if setup:
                shard["setups"] = [setup[1]]
            if seed is not None:
                shard["seeds"] = [seed]
            jobs.append(Job(f"{chapter}/{name}", source, folder / name / f"{chapter}.ipynb", shard,
                            folder / name / f"{chapter}.json"))
    return jobs


def pending_shards(jobs: list[Job], folder: Path) -> list[Job]:
    """The shards in ``jobs`` without results, after recording the plan in ``folder/plan.json``.

    A finished shard is kept only if it ran with the parameters planned now: merging seeds of
    two different recipes would make one record of two experiments. Such a shard raises
    ``ValueError`` naming it and its folder, to delete before running again.
    """
    plan_path = folder / PLAN
    before = json.loads(plan_path.read_text())["shards"] if plan_path.exists() else {}
    planned = {job.results.parent.name: json.loads(json.dumps(job.parameters)) for job in jobs}
    stale = [job for job, (name, parameters) in zip(jobs, planned.items())
             if job.results.exists() and before.get(name) != parameters]
    if stale:
        raise ValueError(f"shards {[job.name for job in stale]} hold results of other parameters than these; "
                         f"delete {[str(job.results.parent) for job in stale]} to run them again")
    folder.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps({"shards": planned}, indent=2) + "\n")
    return [job for job in jobs if not job.results.exists()]


def make_executor(scheduler: Scheduler, folder: Path, *, gpus_per_job: int):
    """A ``submitit.AutoExecutor`` for ``scheduler``, logging to ``folder``, each job with ``gpus_per_job`` GPUs."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=SUBMITIT_CLUSTERS[scheduler.executor])
    extra = {f"slurm_{k}": v for k, v in (scheduler.slurm_options or {}).items()}
    if scheduler.partition:
        extra["slurm_partition"] = scheduler.partition
    executor.update_parameters(timeout_min=scheduler.timeout_min, gpus_per_node=gpus_per_job, tasks_per_node=1, nodes=1, **extra)
    return executor


def _execute(execute: Callable[[Path, Path, dict], float], job: Job) -> tuple[float | None, str | None]:
    """A job's body, in the scheduler's process: ``(seconds, None)``, or ``(None, error)``.

    A shard writes its results into its own folder, so ``MIXUPLIB_RESULTS_DIR``, inherited from
    the submitting process (the test suite sets it), must not send every shard to one file.
    The error comes back as a value, so the submitting side reports one line per failed job
    rather than submitit's traceback of the job process.
    """
    if job.results is not None:
        os.environ.pop(RESULTS_DIR_ENV, None)
    try:
        return execute(job.source, job.output, job.parameters), None
    except Exception as err:  # whatever stopped the chapter is this job's outcome, reported by name
        return None, str(err)


def run_jobs(jobs: list[Job], executor, execute: Callable[[Path, Path, dict], float], *, at_once: int) -> list[str]:
    """Run ``jobs`` through ``executor``, at most ``at_once`` submitted at a time; return the failed names.

    ``execute(source, output, parameters)`` runs one notebook and returns its wall time (the
    book's runner passes its own). Prints one line per job as it ends, like the local runner;
    a failure names the job and its error on stderr, and a job the scheduler lost (time limit,
    node failure) names its submitit log too.
    """
    queue, running, failed = list(jobs), {}, []
    while queue or running:
        while queue and len(running) < at_once:
            job = queue.pop(0)
            executor.update_parameters(name=job.name.replace("/", "."))
            running[executor.submit(_execute, execute, job)] = job
        ended = [handle for handle in running if handle.done()]
        if not ended:
            time.sleep(POLL_S)
        for handle in ended:
            job = running.pop(handle)
            try:
                seconds, error = handle.result()
            except Exception as err:  # the scheduler's own failure: the job never returned
                seconds, error = None, f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]} (log: {handle.paths.stderr})"
            if error is not None:
                print(f"FAILED: {job.name}: {error}", file=sys.stderr, flush=True)
                failed.append(job.name)
            else:
                print(f"{job.name:32s} {seconds:7.1f} s  -> {os.path.relpath(job.output)}", flush=True)
    return failed


def _merge_shard_values(items: list[tuple[str, int, object]], path: list[str], configuration: frozenset, per_seed: list):
    """Merge the values at ``path``, one ``(shard, its seed count, value)`` per shard holding it."""
    values = [value for _, _, value in items]
    if all(isinstance(value, dict) and isinstance(value.get("seeds"), list) for value in values):
        return _merge_seed_record(items, path, per_seed)
    if all(isinstance(value, dict) for value in values):
        keys = dict.fromkeys(key for value in values for key in value)
        return {key: _merge_shard_values([(s, n, v[key]) for s, n, v in items if key in v], path + [key], configuration, per_seed)
                for key in keys}
    if path[-1] not in configuration and all(isinstance(v, list) and len(v) == n for _, n, v in items):
        per_seed.append(path[1:])
        return [x for value in values for x in value]
    first_shard, _, first = items[0]
    for shard, _, value in items[1:]:
        if value != first:
            raise ValueError(f"cannot merge: the shards disagree on {'/'.join(path)}: "
                             f"{first_shard} has {first!r:.80}, {shard} has {value!r:.80}")
    return first


def _merge_seed_record(items: list[tuple[str, int, dict]], path: list[str], per_seed: list) -> dict:
    """Merge typed per-seed records (``{"seeds": [...], name: [one value per seed], ...}``, as
    :meth:`mixuplib.study.Study.record` writes them): every list as long as its record's seeds
    concatenates in shard order, with the seeds; anything else must agree."""
    merged: dict = {"seeds": [seed for _, _, value in items for seed in value["seeds"]]}
    for key in dict.fromkeys(key for _, _, value in items for key in value if key != "seeds"):
        held = [(shard, value) for shard, _, value in items if key in value]
        if len(held) != len(items):
            raise ValueError(f"cannot merge: {'/'.join(path + [key])} is missing from shards "
                             f"{[shard for shard, _, value in items if key not in value]}")
        if all(isinstance(v[key], list) and len(v[key]) == len(v["seeds"]) for _, v in held):
            per_seed.append(path[1:] + [key])
            merged[key] = [x for _, v in held for x in v[key]]
            continue
        first_shard, first = held[0][0], held[0][1][key]
        for shard, value in held[1:]:
            if value[key] != first:
                raise ValueError(f"cannot merge: the shards disagree on {'/'.join(path + [key])}: "
                                 f"{first_shard} has {first!r:.80}, {shard} has {value[key]!r:.80}")
        merged[key] = first
    return merged


def merge_records(records: dict[str, dict], configuration: Sequence[str] = ()) -> dict:
    """One chapter record from its shards' records (``{shard name: record}``, in seed order).

    In ``numbers``, a typed per-seed record (a dict with its own ``"seeds"`` list, as
    :meth:`mixuplib.study.Study.record` writes it) concatenates its per-seed lists and its seeds
    in shard order. Other dicts merge key by key; a list with as many entries as its shard has
    seeds holds per-seed values and the shards' lists concatenate in shard order; anything else (a
    scalar, a list of another length, or a list under a name in ``configuration``, the
    chapter's parameter names, such as a one-element ``milestones``) must be equal in every
    shard and stays, and a disagreement raises ``ValueError`` naming its key path. The other
    fields (chapter, profile, device, environment) must agree the same way: one record is one
    experiment. ``seeds`` are the shards' seeds in order, ``n_runs`` their sum; each shard's
    claims, checked on its own seeds only, are kept under ``shard_claims`` (its reported
    comparisons under ``shard_comparisons``), and ``per_seed``
    lists the key paths that were concatenated, for :func:`render_summary`.
    """
    if not records:
        raise ValueError("merge_records needs at least one shard record, got none")
    configuration, per_seed = frozenset(configuration), []
    shared = ("seeds", "n_runs", "claims", "comparisons", "numbers")
    merged = _merge_shard_values([(s, -1, {k: v for k, v in r.items() if k not in shared}) for s, r in records.items()],
                    ["record"], configuration, per_seed)
    merged["numbers"] = _merge_shard_values([(s, len(r["seeds"]), r["numbers"]) for s, r in records.items()], ["numbers"],
                               configuration, per_seed)
    merged.update(seeds=list(dict.fromkeys(seed for r in records.values() for seed in r["seeds"])),
                  n_runs=sum(r["n_runs"] for r in records.values()), claims=[],
                  shard_claims={s: r["claims"] for s, r in records.items()}, shards=list(records), per_seed=per_seed)
    if any("comparisons" in r for r in records.values()):  # reported verdicts, like claims, hold for a shard's seeds
        merged["shard_comparisons"] = {s: r.get("comparisons", []) for s, r in records.items()}
    return merged


def merge_shards(source: Path, folder: Path, results_dir: Path) -> Path:
    """Merge the shards of chapter ``source`` planned in ``folder`` into ``results_dir/<chapter>.json``.

    Returns the path. The chapter's parameter names are its configuration for
    :func:`merge_records`. ``MIXUPLIB_RESULTS_DIR``, when set, replaces ``results_dir`` as it
    does for a chapter's own results. Raises ``ValueError`` naming the shards without results
    while any is missing.
    """
    import papermill

    chapter = source.stem
    plan_path = folder / PLAN
    if not plan_path.exists():
        raise ValueError(f"no shards of chapter {chapter} in {folder}; run it with --shard first")
    names = list(json.loads(plan_path.read_text())["shards"])
    missing = [name for name in names if not (folder / name / f"{chapter}.json").exists()]
    if missing:
        raise ValueError(f"cannot merge chapter {chapter}: shards {missing} have no results yet; "
                         f"run the same command again to run only them")
    records = {name: json.loads((folder / name / f"{chapter}.json").read_text()) for name in names}
    merged = merge_records(records, papermill.inspect_notebook(str(source)))
    destination = Path(os.environ.get(RESULTS_DIR_ENV) or results_dir) / f"{chapter}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    partial.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    partial.replace(destination)
    return destination


def render_summary(record: dict) -> Table:
    """Every per-seed number of a merged ``record`` as mean ± sample std (ddof = 1) with n.

    A generic view, the same for every chapter; per-seed curves (lists of lists) are left out.
    """
    rows = []
    for path in record["per_seed"]:
        values = record["numbers"]
        for key in path:
            values = values[key]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            rows.append({"number": " / ".join(path), "mean ± std": mean_std(values), "runs": len(values)})
    caption = (f"{record['chapter']}, profile {record['profile']}, merged from {len(record['shards'])} shards: "
               f"mean ± sample std (ddof = 1) over seeds {record['seeds']} (n = {len(record['seeds'])})")
    return html_table(rows, ["number", "mean ± std", "runs"], caption=caption, label=f"tab-{record['chapter']}-merged")


def write_summary(record: dict, path: Path) -> Path:
    """Write :func:`render_summary` of ``record`` to ``path`` as a standalone HTML page."""
    title = html.escape(f"{record['chapter']} ({record['profile']}), merged")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
                    f"<body>\n{render_summary(record).html}\n</body></html>\n")
    return path
