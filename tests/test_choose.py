"""``softgrad choose`` from a synthetic results frame: the spread verdict and the sentence it prints."""

from __future__ import annotations

import pytest

pd = pytest.importorskip("pandas")

from softgrad.history.choose import recommend  # noqa: E402


def _row(impl, t, q25, q75, passed=True):
    return {"impl": impl, "op": "vjp", "n": 1024, "batch": 256, "dtype": "float32", "device": "cpu",
            "time_s": t, "q25_s": q25, "q75_s": q75, "passed": passed, "checked": True,
            "check_failed": 0 if passed else 3, "check_passed": 71, "error_ratio": 0.1, "compile_s": 0.0,
            "run": "r1", "commit": "abc"}


def test_a_win_inside_the_measured_spread_says_either_will_do():
    df = pd.DataFrame([_row("a", 160e-6, 150e-6, 175e-6), _row("b", 165e-6, 158e-6, 170e-6)])
    choice = recommend(df, "vjp", 1024, 256, "float32")
    assert choice.impl == "a" and choice.clear_win is False
    assert "1.03x faster than b (165 us, within the measured spread: either will do)" in choice.sentence()


def test_a_clear_win_is_stated_plainly():
    df = pd.DataFrame([_row("a", 100e-6, 98e-6, 102e-6), _row("b", 200e-6, 190e-6, 210e-6),
                       _row("wrong", 10e-6, 9e-6, 11e-6, passed=False)])
    choice = recommend(df, "vjp", 1024, 256, "float32")
    assert choice.impl == "a" and choice.clear_win is True
    assert choice.sentence().startswith("a: 100 us, 2x faster than b (200 us), passed all 71 correctness cases")
    assert [e["impl"] for e in choice.excluded] == ["wrong"]


def test_a_lone_candidate_has_no_spread_verdict():
    choice = recommend(pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4)]), "vjp", 1024, 256, "float32")
    assert choice.runner_up is None and choice.clear_win is None and "faster than" not in choice.sentence()
