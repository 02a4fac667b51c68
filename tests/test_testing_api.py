"""softgrad.testing at its edges: a selection that leaves nothing to check is a failure with the reason (never a
pass, never an empty parametrisation), every numeric argument of the public API is validated by one rule
(finite, in range, of the right type), and a declared failure that matches no case is an error under pytest
as it is in ``check()``."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import softgrad
import softgrad.testing
from softgrad import registry
from softgrad.testing import check, parametrize_with_checks, suite

from mutants import jacobian, softmax, vjp


def nan_softmax(x):
    """What a wrong softmax returns: NaN everywhere."""
    return np.full(x.shape, np.nan, x.dtype)


class Called(Exception):
    """Raised by a callable that must never run: the arguments were to be refused first."""


def must_not_run(x):
    raise Called("the callable ran: the argument was not refused before any work")


def hangs(x):
    import time

    time.sleep(3600)
    return softmax(x)


# --- item 4: nothing checked is a failure with the reason -----------------------------------------------


@pytest.mark.parametrize("options,why", [
    ({"dtypes": []}, "dtypes=[] selects no dtype"),
    ({"dtypes": ()}, "dtypes=[] selects no dtype"),
    ({"cases": []}, "cases=[] selects no case"),
    ({"cases": ["g-broadcast", "g-scalar"]}, "none of the cases g-broadcast, g-scalar applies to softmax"),
])
def test_check_of_an_empty_selection_fails_with_the_reason(options, why):
    with pytest.raises(AssertionError, match="nothing to check") as exc:
        check(softmax=nan_softmax, **options)
    assert why in str(exc.value), str(exc.value)


def test_check_where_every_case_is_skipped_fails_with_the_skip_reason():
    # a 2x16384x16384 Jacobian is past the checker's budget: the only case selected is skipped
    with pytest.raises(AssertionError, match="nothing to check") as exc:
        check(jacobian=jacobian, cases=["long-row"], dtypes=("float64",))
    text = str(exc.value)
    assert "every one of the 1 selected case(s) is skipped" in text and "exceeds the checker's budget" in text, text


def test_check_with_one_case_left_still_passes():
    records = check(softmax=softmax, jacobian=jacobian, cases=["long-row", "normal-1"], dtypes=("float64",))
    assert [r.verdict for r in records if r.case == "normal-1"] == ["pass", "pass"]


@pytest.mark.parametrize("options,why", [
    ({"dtypes": []}, "dtypes=[] selects no dtype"),
    ({"cases": []}, "cases=[] selects no case"),
    ({"jacobian": jacobian, "softmax": None, "cases": ["long-row"]}, "exceeds the checker's budget"),
])
def test_parametrize_of_an_empty_selection_is_an_error_naming_why(options, why):
    options = {"softmax": nan_softmax, **options}
    with pytest.raises(ValueError, match="nothing to check") as exc:
        parametrize_with_checks(**options)
    assert why in str(exc.value) and "parametrize_with_checks" in str(exc.value), str(exc.value)


# --- item 9: a declared failure matching no case is an error under pytest too ----------------------------


@pytest.mark.parametrize("declared,matches", [
    ({"ties/vjp": "no vjp given"}, "'ties/vjp'"),
    ({"empty-row/softmax/float16": "float16 not selected"}, "'empty-row/softmax/float16'"),
    ({"long-row/jacobian": "skipped: past the budget"}, "'long-row/jacobian'"),
])
def test_parametrize_refuses_a_declared_failure_that_matches_no_case(declared, matches):
    with pytest.raises(ValueError, match="matches no case") as exc:
        parametrize_with_checks(softmax=softmax, jacobian=jacobian, dtypes=("float64",),
                                cases=["normal-1", "empty-row", "long-row"], expected_failures=declared)
    assert matches in str(exc.value)


def test_in_a_pytest_run_nothing_to_check_and_an_unmatched_declaration_are_collection_errors(tmp_path):
    for name, options in (("test_empty.py", "dtypes=[]"),
                          ("test_unmatched.py", "expected_failures={'ties/vjp': 'there is no vjp'}")):
        (tmp_path / name).write_text(textwrap.dedent(f"""
            import numpy as np
            import softgrad.testing

            def softmax(x):
                return np.full(x.shape, np.nan, x.dtype)

            @softgrad.testing.parametrize_with_checks(softmax=softmax, {options})
            def test_case(check):
                check()
        """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = proc.stdout
    assert proc.returncode not in (0, 5), out  # 5: no tests collected, which is what a skip-only run was
    assert "ERROR collecting test_empty.py" in out and "dtypes=[] selects no dtype" in out, out
    assert "ERROR collecting test_unmatched.py" in out and "'ties/vjp'" in out and "matches no case" in out, out
    assert "skipped" not in out and " passed" not in out, out


# --- item 9: every numeric argument is validated by one rule ---------------------------------------------

BAD_NUMBERS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0, 0.0, -0.0, -1, True, False, None, "60", b"60", "nan",
                     [60], 1j, 10 ** 400, -(10 ** 400), np.float64("nan"), np.bool_(True), np.inf]),
    st.floats(allow_nan=False, max_value=0.0),
    st.floats(min_value=softgrad.testing.MAX_TIMEOUT_S, exclude_min=True),
    st.integers(min_value=int(softgrad.testing.MAX_TIMEOUT_S) + 1),
    st.integers(max_value=0),
    st.text(max_size=5),
)


@settings(deadline=None, max_examples=150)
@given(bad=BAD_NUMBERS, isolate=st.booleans())
def test_a_bad_timeout_is_refused_naming_it_before_anything_runs(bad, isolate):
    with pytest.raises((ValueError, TypeError), match="timeout_s") as exc:
        check(softmax=must_not_run, dtypes=("float64",), cases=["normal-1"], isolate=isolate, timeout_s=bad)
    assert not isinstance(exc.value, Called)


@settings(deadline=None, max_examples=60)
@given(good=st.one_of(st.floats(min_value=1e-3, max_value=softgrad.testing.MAX_TIMEOUT_S),
                      st.integers(min_value=1, max_value=int(softgrad.testing.MAX_TIMEOUT_S)),
                      st.sampled_from([np.float32(2.5), np.int64(7)])))
def test_a_good_timeout_is_kept_as_a_float(good):
    s = suite(softmax=softmax, timeout_s=good)
    assert isinstance(s.timeout_s, float) and s.timeout_s == float(good)


def test_a_nan_timeout_with_a_hanging_isolated_callable_is_refused_not_hung():
    with pytest.raises(ValueError, match="timeout_s must be a finite number"):
        check(softmax=hangs, isolate=True, cases=["normal-1"], timeout_s=float("nan"))


@settings(deadline=None, max_examples=120)
@given(field=st.sampled_from(["max_n", "max_elements"]),
       bad=st.one_of(st.sampled_from([math.nan, math.inf, 0, -1, True, None, "8", 8.0, 2.5, 10 ** 400,
                                      np.float64(8.0)]),
                     st.integers(max_value=0), st.integers(min_value=sys.maxsize + 1), st.floats()))
def test_an_entrys_limits_are_refused_unless_positive_integers(field, bad):
    with pytest.raises((ValueError, TypeError), match=rf"{field}\['softmax'\]"):
        softgrad.Implementation.from_ops("limits-demo", softmax=softmax, **{field: {"softmax": bad}})


@settings(deadline=None, max_examples=40)
@given(field=st.sampled_from(["max_n", "max_elements"]),
       good=st.one_of(st.integers(min_value=1, max_value=sys.maxsize), st.just(np.int64(64))))
def test_an_entrys_positive_integer_limits_are_kept(field, good):
    impl = softgrad.Implementation.from_ops("limits-demo", softmax=softmax, **{field: {"softmax": good}})
    assert getattr(impl, field)["softmax"] == good and type(getattr(impl, field)["softmax"]) is int


def test_the_one_rule_names_the_argument_its_range_and_the_value():
    with pytest.raises(TypeError, match=r"^timeout_s must be a number, not bool True$"):
        registry.check_number("timeout_s", True, low=0, high=10, low_open=True)
    with pytest.raises(ValueError, match=re.escape("timeout_s must be a finite number in (0, 10], not 11")):
        registry.check_number("timeout_s", 11, low=0, high=10, low_open=True)
    with pytest.raises(ValueError, match=re.escape("n must be an integer in [1, 10], not an integer of 401 digits")):
        registry.check_number("n", 10 ** 400, low=1, high=10, integer=True)
    assert registry.check_number("n", np.int64(3), low=1, high=10, integer=True) == 3
