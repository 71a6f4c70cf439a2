"""The scale-out path: shards of a chapter as scheduler jobs, merged into one record.

The whole path runs on a CPU through submitit's local executor, the same code that submits
to Slurm: chapter 1's smoke profile in four seed shards, one failing on purpose and re-run,
then merged and rendered.
"""

import json

import nbformat
import pytest

from mixuplib import book, cluster, numerics

CHAPTER = "01_erm_to_mixup"


def test_shards_fail_rerun_merge_and_render(tmp_path, monkeypatch, capsys):
    for name, value in numerics.PINNED_ENV.items():
        monkeypatch.setenv(name, value)  # what the runner pins, restored for the tests after this one
    results = tmp_path / "results"
    monkeypatch.setenv("MIXUPLIB_RESULTS_DIR", str(results))  # where the merged record goes; never a shard's
    run = tmp_path / "run"
    jobs = min(2, book.available_cores())
    shards = run / "shards" / CHAPTER
    done = [shards / f"seed{s}" / f"{CHAPTER}.json" for s in range(4)]

    status = book.schedule_profile("smoke", [CHAPTER], scheduler=cluster.Scheduler("submitit-local", jobs=jobs, timeout_min=10),
                                   shard=["seeds"], overrides={"seeds": [0, 1, 2, 3]}, output_dir=run,
                                   shard_overrides={f"{CHAPTER}/seed2": {"memorize_model": "no-such-model"}})
    out, err = capsys.readouterr()
    assert status == 1
    assert f"FAILED: {CHAPTER}/seed2: chapter {CHAPTER} failed in cell" in err and "no-such-model" in err
    assert f"1 of 4 jobs failed: {CHAPTER}/seed2; run the same command again" in err
    assert [path.exists() for path in done] == [True, True, False, True]
    assert f"{jobs} at a time" in out and not results.exists()

    assert book.merge_chapter("smoke", CHAPTER, output_dir=run) == 1
    assert "shards ['seed2'] have no results yet" in capsys.readouterr().err

    # the cause fixed, the same command, through the CLI, runs the failed shard and nothing else
    stamps = [path.stat().st_mtime_ns for path in done if path.exists()]
    assert book.main(["run", "--profile", "smoke", "--chapter", CHAPTER, "--executor", "submitit-local", "--shard", "seeds",
                      "--jobs", str(jobs), "--set", "seeds=[0, 1, 2, 3]", "--output-dir", str(run),
                      "--timeout-min", "10"]) == 0
    out = capsys.readouterr().out
    assert "3 of 4 shards already have results; running the other 1" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith(CHAPTER)] == [f"{CHAPTER}:", f"{CHAPTER}/seed2"]
    assert [path.stat().st_mtime_ns for path in done[:2] + done[3:]] == stamps
    shard = json.loads(done[2].read_text())
    assert shard["seeds"] == [2] and shard["environment"]["cpu_numerics"]["pinned"] is True
    assert shard["environment"]["cpu_numerics"]["intra_op_threads"] == 1
    assert (shards / "seed2" / f"{CHAPTER}.ipynb").exists()

    assert book.main(["merge", "--profile", "smoke", "--chapter", CHAPTER, "--output-dir", str(run)]) == 0
    merged = json.loads((results / f"{CHAPTER}.json").read_text())
    records = [json.loads(path.read_text()) for path in done]
    assert merged["seeds"] == [0, 1, 2, 3] and merged["n_runs"] == 4 and merged["shards"] == [f"seed{s}" for s in range(4)]
    per_seed = merged["numbers"]["memorization"]["random labels"]["test_error"]
    assert per_seed == [r["numbers"]["memorization"]["random labels"]["test_error"][0] for r in records]
    # the toy's seeds derive from each shard's seeds: its typed per-seed records concatenate, seeds included
    toy = merged["numbers"]["toy"]["ERM"]
    assert toy["seeds"] == [s for r in records for s in r["numbers"]["toy"]["ERM"]["seeds"]]
    assert len(set(toy["seeds"])) == len(toy["seeds"]) == len(toy["test_error"])
    assert merged["shard_claims"] == {f"seed{s}": r["claims"] for s, r in enumerate(records)}
    page = (run / f"{CHAPTER}.merged.html").read_text()
    assert "(n = 4)</caption>" in page and "memorization / random labels / test_error" in page
    # one row per per-seed number: n = 4 for the memorisation, 4 shards x 5 toy seeds for the toy
    toy_rows = sum(path[0] == "toy" for path in merged["per_seed"])
    assert page.count("<td>4</td>") == len(merged["per_seed"]) - toy_rows and page.count("<td>20</td>") == toy_rows


def record(seeds, numbers, **fields):
    return {"chapter": "ch", "profile": "p", "device": "cpu", "environment": {"torch": "2"}, "seeds": seeds,
            "n_runs": len(seeds), "numbers": numbers, "claims": [{"statement": f"seeds {seeds}", "holds": True}], **fields}


def test_merge_concatenates_per_seed_lists_and_keeps_shared_values():
    merged = cluster.merge_records({
        "seed0": record([0], {"err": {"a": [1.0], "b": [2.0]}, "epochs": 3, "curve": [[1, 2]], "grid": [0.1, 0.2],
                              "milestones": [5], "only_here": {"x": [7.0]}}),
        "seed1": record([1], {"err": {"a": [3.0], "b": [4.0]}, "epochs": 3, "curve": [[3, 4]], "grid": [0.1, 0.2],
                              "milestones": [5]}),
    }, configuration=["milestones"])
    assert merged["numbers"] == {"err": {"a": [1.0, 3.0], "b": [2.0, 4.0]}, "epochs": 3, "curve": [[1, 2], [3, 4]],
                                 "grid": [0.1, 0.2], "milestones": [5], "only_here": {"x": [7.0]}}
    assert merged["seeds"] == [0, 1] and merged["n_runs"] == 2 and merged["claims"] == []
    assert merged["shard_claims"]["seed1"] == [{"statement": "seeds [1]", "holds": True}]
    assert "shard_comparisons" not in merged, "no shard reported any"
    verdicts = {f"seed{s}": record([s], {}, comparisons=[{"statement": "a vs b", "verdict": f"seed {s}"}]) for s in (0, 1)}
    assert cluster.merge_records(verdicts)["shard_comparisons"]["seed1"] == [{"statement": "a vs b", "verdict": "seed 1"}]
    assert merged["per_seed"] == [["err", "a"], ["err", "b"], ["curve"], ["only_here", "x"]]
    table = cluster.render_summary(merged)
    assert "err / a" in table.text and "2.00 ± 1.41" in table.text and "curve" not in table.text


def test_merge_concatenates_typed_per_seed_records_with_their_seeds():
    # A shard of two seeds beside one of one: a typed record says which lists are per seed, so a
    # two-entry list that is not per seed (a grid) is kept, not concatenated.
    first = {"runs": {"ERM": {"seeds": [0, 1], "test_error": [1.0, 2.0], "grid": [0.5]}}}
    second = {"runs": {"ERM": {"seeds": [2], "test_error": [3.0], "grid": [0.5]}}}
    merged = cluster.merge_records({"a": record([0, 1], first), "b": record([2], second)})
    assert merged["numbers"]["runs"]["ERM"] == {"seeds": [0, 1, 2], "test_error": [1.0, 2.0, 3.0], "grid": [0.5]}
    assert ["runs", "ERM", "test_error"] in merged["per_seed"]
    with pytest.raises(ValueError, match="numbers/runs/ERM/test_nll is missing from shards"):
        cluster.merge_records({"a": record([0], {"runs": {"ERM": {"seeds": [0], "test_nll": [1.0]}}}),
                               "b": record([1], {"runs": {"ERM": {"seeds": [1]}}})})


@pytest.mark.parametrize("first, second, path", [
    ({"epochs": 3}, {"epochs": 4}, "numbers/epochs"),
    ({"grid": [0.1, 0.2]}, {"grid": [0.1, 0.3]}, "numbers/grid"),
])
def test_merge_names_the_key_the_shards_disagree_on(first, second, path):
    with pytest.raises(ValueError, match=f"disagree on {path}: seed0 has .*, seed1 has"):
        cluster.merge_records({"seed0": record([0], first), "seed1": record([1], second)})


def test_merge_refuses_shards_of_different_environments():
    with pytest.raises(ValueError, match="disagree on record/environment/torch"):
        cluster.merge_records({"seed0": record([0], {}), "seed1": record([1], {}, environment={"torch": "3"})})


def test_shards_by_setup_and_seed_and_a_finished_shard_of_other_parameters(tmp_path):
    parameters = {"seeds": [0, 1], "setups": [{"data": "a"}, {"data": "b"}], "epochs": 1}
    jobs = cluster.shard_jobs("ch", tmp_path / "ch.ipynb", parameters, ["setups", "seeds"], tmp_path / "shards")
    assert [job.name for job in jobs] == ["ch/setup0-seed0", "ch/setup0-seed1", "ch/setup1-seed0", "ch/setup1-seed1"]
    assert jobs[2].parameters == {"seeds": [0], "setups": [{"data": "b"}], "epochs": 1,
                                  "results_dir": str(tmp_path / "shards" / "setup1-seed0")}
    assert cluster.pending_shards(jobs, tmp_path / "shards") == jobs
    jobs[0].results.parent.mkdir(parents=True)
    jobs[0].results.write_text("{}")
    assert cluster.pending_shards(jobs, tmp_path / "shards") == jobs[1:]
    changed = cluster.shard_jobs("ch", tmp_path / "ch.ipynb", {**parameters, "epochs": 2}, ["setups", "seeds"],
                                 tmp_path / "shards")
    with pytest.raises(ValueError, match=r"shards \['ch/setup0-seed0'\] hold results of other parameters"):
        cluster.pending_shards(changed, tmp_path / "shards")
    with pytest.raises(ValueError, match=r"shard takes a comma-separated subset of \['setups', 'seeds'\], got 'epochs'"):
        cluster.shard_jobs("ch", tmp_path / "ch.ipynb", parameters, ["epochs"], tmp_path / "shards")


def test_a_chapter_with_one_setup_shards_by_its_notebook_seeds(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("seeds = [3, 4]\nsetup = {'data': 'a'}", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, tmp_path / "one.ipynb")
    jobs = cluster.shard_jobs("one", tmp_path / "one.ipynb", {}, ["setups", "seeds"], tmp_path / "shards")
    assert [job.name for job in jobs] == ["one/seed3", "one/seed4"]
    with pytest.raises(ValueError, match="chapter one has no parameter 'setups'; it has"):
        cluster.shard_jobs("one", tmp_path / "one.ipynb", {}, ["setups"], tmp_path / "shards")


def test_scheduler_options_need_a_scheduler_and_local_jobs_fit_the_cores(tmp_path, capsys):
    with pytest.raises(SystemExit):
        book.main(["run", "--profile", "smoke", "--shard", "seeds"])
    assert "--shard: only with --executor slurm or submitit-local" in capsys.readouterr().err
    too_many = book.available_cores() + 1
    assert book.schedule_profile("smoke", [CHAPTER], scheduler=cluster.Scheduler("submitit-local", jobs=too_many), shard=["seeds"],
                                 output_dir=tmp_path) == 2
    assert f"jobs must be an integer from 1 to {too_many - 1}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("settings, message", [
    ({"executor": "local"}, r"executor must be one of \['slurm', 'submitit-local'\], got 'local'"),
    ({"timeout_min": 0}, r"timeout_min must be an integer from 1 \(minutes\), got 0"),
    ({"gpus_per_job": -1}, r"gpus_per_job must be an integer from 0 \(GPUs\), got -1"),
    ({"jobs": 0}, r"jobs must be an integer from 1 \(jobs submitted at once\), got 0"),
])
def test_scheduler_names_the_bad_setting_and_what_it_accepts(settings, message):
    """'local' is the runner's own process pool, never a scheduler: submitit's is 'submitit-local'."""
    with pytest.raises(ValueError, match=message):
        cluster.Scheduler(**settings)


def test_the_summary_is_not_scheduled_beside_the_chapters_it_reads(capsys):
    """Scheduled jobs run at once: the summary would read records not yet written, so it is left out, and the
    line says how to run it afterwards."""
    assert book.schedule_profile("smoke", ["08_which_mixup"], scheduler=cluster.Scheduler("submitit-local", jobs=1)) == 0
    printed = capsys.readouterr().out
    assert "08_which_mixup reads the other chapters' records and is not scheduled" in printed
    assert "run `python -m mixuplib.book run --profile smoke --chapter 08_which_mixup`" in printed
    assert "nothing to run\n" in printed
