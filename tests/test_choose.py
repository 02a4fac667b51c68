"""``softgrad choose`` from a synthetic results frame: the spread verdict and the sentence it prints."""

from __future__ import annotations

import pytest

pd = pytest.importorskip("pandas")

from softgrad.history.choose import NoResult, recommend  # noqa: E402


def _row(impl, t, q25, q75, passed=True, n=1024, batch=256, run="r1", **more):
    return {"impl": impl, "op": "vjp", "n": n, "batch": batch, "dtype": "float32", "device": "cpu",
            "time_s": t, "q25_s": q25, "q75_s": q75, "passed": passed, "checked": True,
            "check_failed": 0 if passed else 3, "check_passed": 71, "error_ratio": 0.1, "compile_s": 0.0,
            "run": run, "commit": "abc", "x_layout": "contiguous", "g_layout": "contiguous", **more}


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


def test_far_from_any_measurement_the_nearest_point_is_used_and_said_so():
    df = pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4, n=4096, batch=256), _row("b", 2e-4, 1.9e-4, 2.1e-4, n=4096, batch=256),
                       _row("a", 1e-6, 9e-7, 1.1e-6, n=16, batch=1), _row("b", 5e-7, 4e-7, 6e-7, n=16, batch=1)])
    choice = recommend(df, "vjp", 50257, 4096, "float32")
    assert (choice.impl, choice.measured_batch, choice.measured_n, choice.far) == ("a", 256, 4096, True)
    sentence = choice.sentence()
    assert "(measured at batch 256, n 4096); this is the nearest measured point, 1/16 of the rows and 1/12.3 of " \
           "the row length asked" in sentence and "softgrad run --workload FILE" in sentence
    near = recommend(df, "vjp", 3000, 256, "float32")
    assert near.measured_n == 4096 and not near.far and "nearest measured point" not in near.sentence()
    assert recommend(df, "vjp", 16, 1, "float32").impl == "b", "each size answers for itself"


def test_a_dtype_never_timed_is_no_answer_naming_what_was():
    df = pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4)])
    with pytest.raises(NoResult, match=r"no stored timing for vjp bfloat16 on cpu \(timed here: float32\)"):
        recommend(df, "vjp", 1024, 256, "bfloat16")


def test_layouts_are_chosen_for_and_one_entry_is_never_its_own_runner_up():
    df = pd.DataFrame([_row("a", 1e-4, 9e-5, 1.1e-4), _row("a", 5e-5, 4e-5, 6e-5, g_layout="broadcast"),
                       _row("b", 2e-4, 1.9e-4, 2.1e-4), _row("b", 3e-5, 2e-5, 4e-5, g_layout="broadcast"),
                       _row("a", 9e-5, 8e-5, 1e-4, run="r2")])
    plain = recommend(df, "vjp", 1024, 256, "float32")
    assert (plain.impl, plain.time_s, plain.runner_up) == ("a", 9e-5, "b"), "the newest run's a, b second"
    broadcast = recommend(df, "vjp", 1024, 256, "float32", g_layout="broadcast")
    assert (broadcast.impl, broadcast.runner_up) == ("b", "a")
