"""The summary page's parts: records that keep their intervals as numbers, the staleness test,
the gathering of comparisons, and the MixUp/CutMix switch chapter 2 measures."""

import json
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from timm.data import Mixup

import mixuplib as mx
from mixuplib import models, summary
from mixuplib.claims import Claims
from mixuplib.results import RESULTS_DIR_ENV, notebook_code_digest, write_results


@pytest.fixture(autouse=True)
def records_where_asked(monkeypatch):
    monkeypatch.delenv(RESULTS_DIR_ENV, raising=False)  # conftest sends a chapter's records elsewhere


def claims_with_one_of_each():
    claims = Claims(enforce=False)
    versus = mx.paired([1.0, 1.2, 1.1], [2.0, 2.1, 2.3], seeds=[0, 1, 2], names=("mixup", "ERM"))
    claims.finding("mixup lowers the error below ERM's", versus, lower="mixup", unit=" %")
    claims.report("ERM against mixup", mx.paired([2.0, 2.1, 2.3], [1.0, 1.2, 1.1], seeds=[0, 1, 2], names=("ERM", "mixup")))
    claims.check("a plain check", True, "1 < 2")
    return claims


def notebook(path, code):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("prose"), nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)
    return path


def test_a_record_keeps_each_interval_as_numbers_and_a_check_has_none():
    claims = claims_with_one_of_each()
    finding, check = claims.to_list()[0], claims.to_list()[1]
    assert finding["comparison"]["a"] == "mixup" and finding["comparison"]["unit"] == " %"
    assert finding["comparison"]["low"] < finding["comparison"]["difference"] < finding["comparison"]["high"] < 0
    assert "comparison" not in check
    reported = claims.reported_list()[0]["comparison"]
    assert summary.verdict_of(reported) == claims.reported_list()[0]["verdict"] == "mixup lower"


def test_the_code_digest_ignores_prose_outputs_and_injected_parameters(tmp_path):
    path = notebook(tmp_path / "ch.ipynb", "x = 1")
    digest = notebook_code_digest(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "other prose"
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells.insert(1, nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}))
    nbformat.write(nb, path)
    assert notebook_code_digest(path) == digest
    nb.cells[2].source = "x = 3"
    nbformat.write(nb, path)
    assert notebook_code_digest(path) != digest


def test_missing_stale_unchecked_and_current_records_are_told_apart(tmp_path):
    records, notebooks = tmp_path / "results", tmp_path / "notebooks"
    notebooks.mkdir()
    claims = claims_with_one_of_each()
    for name in ("01_a", "02_b", "03_c", "04_d"):
        notebook(notebooks / f"{name}.ipynb", f"print('{name}')")
    for name in ("01_a", "02_b", "03_c"):
        write_results(name, {}, profile="embedded", seeds=[0, 1, 2], device="cpu", results_dir=records,
                      claims=claims.to_list(), comparisons=claims.reported_list(),
                      notebook_code=None if name == "03_c" else notebook_code_digest(notebooks / f"{name}.ipynb"))
    notebook(notebooks / "02_b.ipynb", "print('edited after its record')")
    found = {r.chapter: r for r in summary.read_records(records, notebooks, ["01_a", "02_b", "03_c", "04_d"],
                                                         profile="embedded")}
    assert {name: r.status for name, r in found.items()} == {"01_a": "current", "02_b": "stale", "03_c": "unchecked",
                                                             "04_d": "missing"}
    assert found["02_b"].record is None and found["04_d"].record is None  # stale numbers are never shown
    rows = summary.comparisons(list(found.values()))
    assert [(r["chapter"], r["kind"]) for r in rows] == [("01_a", "finding"), ("01_a", "report"), ("03_c", "finding"),
                                                         ("03_c", "report")]
    assert summary.lookup(list(found.values()), "02_b", "ERM against mixup") is None
    assert summary.lookup(list(found.values()), "01_a", "ERM against mixup")["verdict"] == "mixup lower"
    other = summary.read_records(records, notebooks, ["01_a"], profile="paper")
    assert other[0].status == "other profile"
    with pytest.raises(ValueError, match="chapters must be a non-empty list"):
        summary.read_records(records, notebooks, [])


def test_one_seed_intervals_resolve_nothing_and_are_left_out(tmp_path):
    claims = Claims(enforce=False)
    claims.report("one seed", mx.paired([1.0], [2.0], seeds=[0], names=("a", "b")))
    write_results("01_a", {}, profile="embedded", seeds=[0], device="cpu", results_dir=tmp_path,
                  comparisons=claims.reported_list())
    assert json.loads((tmp_path / "01_a.json").read_text())["comparisons"][0]["comparison"]["high"] == float("inf")
    assert summary.comparisons(summary.read_records(tmp_path, tmp_path, ["01_a"])) == []


def image_batch(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_the_switch_is_cutmix_or_mixup_after_its_coin():
    x, y = image_batch()
    net = models.small_cnn(1, 10, width=4).eval()
    for prob, alone in ((1.0, lambda g: mx.cutmix(x, y, 1.0, generator=g)), (0.0, lambda g: mx.mixup(x, y, 0.2, generator=g))):
        g = torch.Generator().manual_seed(3)
        loss = mx.MixUpCutMix(0.2, 1.0, switch_prob=prob).loss(net, x, y, g)
        g = torch.Generator().manual_seed(3)
        torch.rand((), generator=g)  # the coin
        batch = alone(g)
        assert torch.equal(loss, mx.mixup_cross_entropy(net(batch.x), batch))


def test_the_switch_picks_cutmix_at_its_rate_as_timm_does():
    """Over 2000 batches the share of CutMix batches is within 3 binomial standard errors of
    switch_prob, for ours and for timm's Mixup (per-batch mode): the same recipe."""
    x, y = image_batch()
    g, n, prob = torch.Generator().manual_seed(0), 2000, 0.3
    ours = mx.MixUpCutMix(0.2, 1.0, switch_prob=prob)
    seen = [float(torch.rand((), generator=g)) < ours.switch_prob for _ in range(n)]
    np.random.seed(0)  # timm draws its coin from numpy's global generator
    tm = Mixup(mixup_alpha=0.2, cutmix_alpha=1.0, switch_prob=prob, mode="batch", num_classes=10)
    theirs = [tm._params_per_batch()[1] for _ in range(n)]  # (lam, use_cutmix)
    bound = 3 * (prob * (1 - prob) / n) ** 0.5
    assert abs(sum(seen) / n - prob) < bound and abs(sum(theirs) / n - prob) < bound


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_the_switch_names_a_bad_probability(bad):
    with pytest.raises(ValueError, match="switch_prob must be a probability in \\[0, 1\\]"):
        mx.MixUpCutMix(switch_prob=bad)


def test_the_summary_page_names_a_missing_and_a_stale_record_and_shows_neither(tmp_path, monkeypatch):
    """The page itself, run on a copy of the book's records with chapter 3's removed and chapter 4's written by
    other code: it says which, its table shows no numbers of either, and (as a reader's run) it finishes."""
    import papermill

    root = Path(__file__).resolve().parents[1]
    records = tmp_path / "records"
    shutil.copytree(root / "results" / "embedded", records)
    (records / "03_manifold_mixup.json").unlink()
    stale = json.loads((records / "04_adamixup.json").read_text())
    stale["notebook_code_sha256"] = "0" * 64
    (records / "04_adamixup.json").write_text(json.dumps(stale))
    out = tmp_path / "out.ipynb"
    monkeypatch.setenv("MIXUPLIB_CHECK_CLAIMS", "0")  # a reader's run: the page marks what does not hold, and finishes
    papermill.execute_notebook(str(root / "notebooks" / "08_which_mixup.ipynb"), str(out), cwd=str(root / "notebooks"),
                               parameters={"records_dir": str(records)}, progress_bar=False, kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "03_manifold_mixup: missing: the chapter has not written its record; its numbers are not shown" in printed
    assert "04_adamixup: stale: the chapter's code changed after it wrote its record; its numbers are not shown" in printed
    assert "does not hold (not enforced)] every chapter's record is current" in printed
    tables = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert 'href="04_adamixup.html' not in tables and 'href="03_manifold_mixup.html' not in tables
    assert 'href="02_input_mixup.html#sec-cutmix"' in tables
