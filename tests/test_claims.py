"""Claims as checks: a stated outcome holds or stops the run, naming itself."""

import pytest

from mixuplib.claims import ClaimFailed, Claims, seed_margin


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


def test_seed_margin_is_the_largest_sample_std_with_a_floor():
    assert seed_margin([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]) == 1.0
    assert seed_margin([1.0, 1.0], floor=0.5) == 0.5
    assert seed_margin([4.0], floor=0.2) == 0.2  # one run has no spread
    with pytest.raises(ValueError, match="floor must be a finite number >= 0"):
        seed_margin([1.0, 2.0], floor=-1.0)
