"""Claims as checks: a stated outcome holds or stops the run, naming itself."""

import pytest

from mixuplib.claims import ClaimFailed, Claims


def test_comparisons_use_means_and_print_the_spread(capsys):
    claims = Claims()
    claims.below("mixup lowers the NLL", [0.38, 0.39, 0.40], [0.52, 0.53, 0.51], margin=0.05, precision=3)
    claims.above("ERM is more confident", 0.98, 0.87, margin=0.02)
    claims.within("the two tie", 13.0, 13.02, tolerance=0.3, unit=" %")
    assert [c.holds for c in claims.items] == [True, True, True]
    assert claims.items[0].evidence == "0.390 ± 0.010 (n = 3) vs 0.520 ± 0.010 (n = 3) - 0.050"
    claims.show()
    out = capsys.readouterr().out
    assert out.startswith("What this run shows (3 claims") and "- [holds] the two tie  (|13.00 % - 13.02 %| <= 0.30)" in out
    assert claims.to_list()[1] == {"statement": "ERM is more confident", "holds": True, "evidence": "0.98 vs 0.87 + 0.02"}


def test_a_false_claim_stops_the_run_naming_itself():
    claims = Claims()
    with pytest.raises(ClaimFailed, match="claim failed: 'mixup wins by a point': 13.50 vs 13.75 - 1.00"):
        claims.below("mixup wins by a point", 13.5, 13.75, margin=1.0)


def test_unenforced_claims_are_listed_not_raised(capsys):
    claims = Claims(enforce=False)
    claim = claims.above("noise data shows a gain", 1.0, 2.0)
    assert not claim.holds
    claims.show()
    assert "[does not hold (not enforced)] noise data shows a gain" in capsys.readouterr().out


def test_bad_claims_are_refused():
    claims = Claims()
    claims.check("once", True, "")
    with pytest.raises(ValueError, match="already checked"):
        claims.check("once", True, "")
    with pytest.raises(ValueError, match="statement must be a non-empty string"):
        claims.check("", True, "")
    with pytest.raises(ValueError, match="margin must be a finite number >= 0"):
        claims.below("x", 1, 2, margin=-1)
    with pytest.raises(ValueError, match="at least one value"):
        claims.below("y", [], 2)


def test_findings_assert_what_a_paired_interval_shows(capsys):
    from mixuplib.stats import paired

    claims = Claims()
    gain = paired([12.9, 13.1, 12.7, 13.0, 12.8], [13.9, 14.0, 13.6, 14.1, 13.7], seeds=[0, 1, 2, 3, 4],
                  names=("mixup", "ERM"))
    claims.finding("mixup lowers the test error below ERM's", gain, lower="mixup", unit=" %")
    tie = paired([13.0, 13.1, 12.9], [13.02, 13.08, 12.95], seeds=[0, 1, 2], names=("LS", "ERM"))
    claims.finding("label smoothing and ERM end within ±0.5 points", tie, within=0.5)
    claims.report("ERM against mixup", paired([1.0, 2.0, 3.0], [2.0, 1.0, 3.5], seeds=[0, 1, 2],
                                            names=("ERM", "mixup")))
    assert [c.holds for c in claims.items] == [True, True]
    assert "mixup - ERM = -0.96" in claims.items[0].evidence and claims.items[0].evidence.endswith("mixup lower")
    assert "inside ±0.50" in claims.items[1].evidence
    assert claims.reported_list() == [{"statement": "ERM against mixup", "verdict": "not resolved at n = 3",
                                       "evidence": claims.reported[0].evidence,
                                       "comparison": claims.reported_list()[0]["comparison"]}]
    assert claims.reported_list()[0]["comparison"]["a"] == "ERM" and claims.items[1].comparison["within"] == 0.5
    claims.show()
    out = capsys.readouterr().out
    assert "Reported, not asserted (1 comparisons):\n- [not resolved at n = 3] ERM against mixup" in out
    with pytest.raises(ClaimFailed, match="ERM lowers the error"):
        claims.finding("ERM lowers the error", gain, lower="ERM")
    with pytest.raises(ValueError, match="give exactly one of lower="):
        claims.finding("neither", gain)
    with pytest.raises(TypeError, match="comparison must be a mixuplib.stats.Comparison"):
        claims.report("numbers", [1.0, 2.0])


def test_a_readers_run_marks_what_does_not_hold_and_says_why(capsys):
    claims = Claims(enforce=False)
    claims.below("holds", 1.0, 2.0)
    claims.below("does not", 3.0, 2.0)
    claims.show()
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("1 of 2 findings do not hold in this run. This is not the book's own run")
    assert out[3] == "- [does not hold (not enforced)] does not  (3.00 vs 2.00)"
