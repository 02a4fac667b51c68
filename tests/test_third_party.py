"""softgrad.testing for library authors: plain callables checked with no registration, expected failures,
one pytest test per case, entries made of callables, entry points of installed distributions, and the
example files of the documentation (docs/library-authors.md)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import softgrad
import softgrad.testing
from softgrad import registry
from softgrad.check.cases import CATALOGUE
from softgrad.check.checker import JACOBIAN_ELEMENT_BUDGET
from softgrad.testing import check, parametrize_with_checks

from mutants import MUTANTS, Mutant, jacobian, softmax, vjp

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = Path(__file__).parent / "examples"


def _failures(exc: pytest.ExceptionInfo) -> list[str]:
    return str(exc.value).splitlines()[1:]


# --- check() with plain callables -----------------------------------------------------------------------


def test_correct_callables_pass_and_leave_nothing_behind():
    names = [i.name for i in registry.all_implementations()]
    records = check(softmax=softmax, jacobian=jacobian, vjp=vjp, dtypes=("float64", "float32", "float16"),
                    expected_failures=None)
    assert {r.op for r in records} == {"softmax", "jacobian", "vjp"}
    assert {r.verdict for r in records} <= {"pass", "skip"} and sum(r.verdict == "pass" for r in records) > 100
    assert [i.name for i in registry.all_implementations()] == names, "nothing registered"
    assert not [k for k in registry._BUILT if k[0] == softgrad.testing.UNDER_TEST], "nothing left built"


#: the planted bugs taken through ``check()``'s plain-callable route in the fast suite: one for each kind of check
#: that must name it (values, NaN policy, input ownership, determinism, contract, errors, a result overwritten,
#: the VJP's own checks, a float16-only entry), on :data:`ROUTE_CASES`; every bug goes that route over check()'s
#: default cases in the slow suite, and every bug is caught through the registry by tests/test_mutants.py in the
#: fast suite
ROUTE_SAMPLE = ("sign-flip", "no-max-shift", "in-place", "nondeterministic", "wrong-dtype", "raises",
                "static-output", "vjp-missing-sum", "fp16-running-sum")
#: the fast sample's cases: the quick catalogue but for the Jacobians the checker builds past 2**16 entries (n = 517
#: to 1025, 90% of a route's time) and the default's threshold cases (65537 rows, 2**16 entries); each sampled bug
#: names the same checks here as over the default (what the route proves does not depend on a case's size)
ROUTE_CASES = tuple(c.name for c in CATALOGUE
                    if c.quick and not 1 << 16 < c.rows * c.n * c.n <= JACOBIAN_ELEMENT_BUDGET)


@pytest.mark.parametrize("mutant,cases", [
    *(pytest.param(m, None, id=m.name, marks=[pytest.mark.slow]) for m in MUTANTS),
    *(pytest.param(m, ROUTE_CASES, id=f"{m.name}-route-cases") for m in MUTANTS if m.name in ROUTE_SAMPLE)])
def test_every_planted_bug_passed_as_plain_callables_is_caught_with_its_check_named(mutant: Mutant, cases):
    with pytest.raises(AssertionError) as exc:
        check(**mutant.ops, dtypes=mutant.dtypes, name=f"mutant-{mutant.name}",
              **({} if cases is None else {"cases": cases}))
    lines = _failures(exc)
    assert lines and all(line.strip().startswith(f"mutant-{mutant.name} ") or "expected failure" in line
                         for line in lines)
    named = set(re.findall(r"\[([^\]]*)\]", "\n".join(lines)))
    fired = {c.strip() for group in named for c in group.split(",")}
    assert fired & mutant.caught_by, (mutant.name, fired)


def test_the_fast_sample_of_planted_bugs_names_real_bugs_of_every_kind():
    by_name = {m.name: m for m in MUTANTS}
    assert set(ROUTE_SAMPLE) <= set(by_name), set(ROUTE_SAMPLE) - set(by_name)
    kinds = set().union(*(by_name[n].caught_by for n in ROUTE_SAMPLE))
    assert {"accuracy", "nan-policy", "input-modified", "deterministic", "contract", "error",
            "result-overwritten", "vjp-equals-jt-g"} <= kinds, kinds


def test_a_bug_only_past_1024_names_exactly_those_cases_and_the_numbers():
    def tail_dropped(x):  # a kernel whose second 1024-block is never added to the sum
        e = np.exp(x - x.max(-1, keepdims=True, initial=-np.inf))
        total = e[..., :1024].sum(-1, keepdims=True) if x.shape[-1] > 1024 else e.sum(-1, keepdims=True)
        return (e / total).astype(x.dtype)

    with pytest.raises(AssertionError) as exc:
        check(softmax=tail_dropped, dtypes=("float32",))
    lines = _failures(exc)
    assert {re.search(r" case (\S+) ", x).group(1) for x in lines} == {"n-1025", "uniform-4096", "n-8193",
                                                                      "n-65537"}, lines
    line = next(x for x in lines if "n-1025" in x)
    assert "softmax float32 cpu case n-1025 (2, 1025): FAIL [accuracy" in line
    assert re.search(r"worst [0-9.e+]+x tolerance", line) and "want" in line
    assert "(guards: n one past a block size" in line


def test_an_expected_failure_is_accepted_and_one_that_passes_is_reported():
    def no_empty_rows(x):
        if x.shape[-1] == 0:
            raise ValueError("empty last axis")
        return softmax(x)

    check(softmax=no_empty_rows, expected_failures={"empty-row": "raises on an empty last axis, on purpose"})
    with pytest.raises(AssertionError) as exc:
        check(softmax=softmax, expected_failures={"empty-row": "raises on an empty last axis, on purpose",
                                                  "ties/vjp": "does not apply: no vjp given"})
    lines = _failures(exc)
    assert sum("PASSED but is declared an expected failure (empty-row: raises" in x for x in lines) == 2
    assert any("expected failure 'ties/vjp'" in x and "matches no case" in x for x in lines)
    # narrowed to an op and a dtype: the float64 failure is still one
    with pytest.raises(AssertionError, match="softmax float64 cpu case empty-row"):
        check(softmax=no_empty_rows, expected_failures={"empty-row/softmax/float32": "float32 only"})


@pytest.mark.parametrize("declared,message", [
    ({"no-such-case": "x"}, "unknown case 'no-such-case'"),
    ({"ties/backward": "x"}, "unknown op 'backward'"),
    ({"ties/vjp/float8": "x"}, "unknown dtype 'float8'"),
    ({"ties/vjp/float32/cpu": "x"}, "write 'case', 'case/op' or 'case/op/dtype'"),
    ({"ties": ""}, "non-empty string"),
])
def test_a_bad_expected_failure_is_a_clear_error(declared, message):
    with pytest.raises((ValueError, KeyError), match=re.escape(message)):
        check(softmax=softmax, expected_failures=declared)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="give at least one of softmax="):
        check()
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        check(softmax=softmax, backend="tensorflow")
    with pytest.raises(TypeError, match="vjp= must be callable"):
        check(softmax=softmax, vjp=np.zeros(3))
    with pytest.raises(ValueError, match="unknown dtype"):
        check(softmax=softmax, dtypes=("float128",))
    with pytest.raises(ValueError, match="importable by name"):
        check(softmax=lambda x: softmax(x), isolate=True)


def test_a_callable_under_test_never_gets_a_registered_entrys_ops():
    """The name under test may be a registered entry's: the build cache holds each object's own ops."""
    numpy_entry = registry.get("numpy")
    numpy_entry.ops_for("cpu")  # built and cached

    def wrong(x):
        return softmax(x) * 2

    with pytest.raises(AssertionError, match=r"numpy softmax float64 cpu case normal-1 .*FAIL"):
        check(softmax=wrong, name="numpy", dtypes=("float64",))
    assert registry.get("numpy") is numpy_entry and numpy_entry.ops_for("cpu")["softmax"] is not wrong


# --- isolation: a hang or a crash fails its case, the session goes on ------------------------------------


def hangs_on_long_rows(x):
    if x.shape[-1] > 1000:
        time.sleep(3600)
    return softmax(x)


def dies_on_ties(x):
    if x.size and np.all(x == np.round(x)) and x.shape[-1] == 29:
        os._exit(7)
    return softmax(x)


def test_isolated_a_hang_and_a_crash_each_fail_their_case_only():
    with pytest.raises(AssertionError) as exc:
        check(softmax=hangs_on_long_rows, dtypes=("float64",), isolate=True, timeout_s=3,
              cases=["normal-1", "n-1025", "ties", "sliced"])
    lines = _failures(exc)
    assert len(lines) == 1 and "case n-1025" in lines[0] and "[timeout]" in lines[0], lines
    with pytest.raises(AssertionError) as exc:
        check(softmax=dies_on_ties, dtypes=("float64",), isolate=True, cases=["normal-1", "ties", "sliced"])
    lines = _failures(exc)
    assert len(lines) == 1 and "case ties" in lines[0] and "died (exit code 7)" in lines[0], lines


# --- parametrize_with_checks ---------------------------------------------------------------------------


def _no_empty_rows(x):
    if x.shape[-1] == 0:
        raise ValueError("empty last axis")
    return softmax(x)


def test_parametrize_makes_one_test_per_case_with_strict_xfails():
    mark = parametrize_with_checks(softmax=_no_empty_rows, vjp=vjp, dtypes=("float32",),
                                   expected_failures={"empty-row/softmax": "raises on an empty last axis"})
    assert mark.args[0] == "check"
    params = mark.args[1]
    ids = [p.id for p in params]
    assert "softmax-float32-normal-1" in ids and "vjp-float32-masked-neg-inf" in ids and len(ids) == len(set(ids))
    xfails = {p.id: m.kwargs for p in params for m in p.marks if m.name == "xfail"}
    assert xfails == {"softmax-float32-empty-row": {"strict": True, "reason": "raises on an empty last axis"}}
    by_id = {p.id: p.values[0] for p in params}
    assert by_id["softmax-float32-n-1025"].description.startswith("n one past a block size")
    assert by_id["softmax-float32-normal-1"]().verdict == "pass"
    with pytest.raises(AssertionError, match="case empty-row"):
        by_id["softmax-float32-empty-row"]()


def test_in_a_pytest_run_a_bug_fails_its_case_and_an_unneeded_xfail_fails_strictly(tmp_path):
    test_file = tmp_path / "test_lib.py"
    test_file.write_text(textwrap.dedent("""
        import numpy as np
        import softgrad.testing

        def softmax(x):  # no max shift: overflows at logits near 1e4
            e = np.exp(x)
            return (e / e.sum(-1, keepdims=True)).astype(x.dtype)

        @softgrad.testing.parametrize_with_checks(softmax=softmax, dtypes=("float64",),
                                                  expected_failures={"ties": "claimed, but it passes"})
        def test_case(check):
            check()
    """))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           str(test_file)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    out = proc.stdout
    assert proc.returncode == 1, out
    failed = set(re.findall(r"FAILED \S+::test_case\[([^\]]+)\]", out))
    assert "softmax-float64-large-1e4" in failed and "softmax-float64-ties" in failed, out
    assert "softmax-float64-normal-1" not in failed
    assert "[XPASS(strict)] claimed, but it passes" in out


@parametrize_with_checks(softmax=_no_empty_rows, vjp=vjp, dtypes=("float64",),
                         expected_failures={"empty-row/softmax": "raises on an empty last axis, on purpose"})
def test_this_suite_through_the_decorator(check):
    check()


# --- Implementation.from_ops and registering twice -----------------------------------------------------


def test_from_ops_makes_an_entry_without_a_build_function():
    impl = softgrad.Implementation.from_ops("from-ops-demo", softmax=softmax, vjp=vjp, dtypes=("float32",))
    assert impl.ops == ("softmax", "vjp") and impl.family == "from-ops-demo" and impl.dtypes == ("float32",)
    assert impl.source.endswith("mutants.py") and impl.build("cpu") == {"softmax": softmax, "vjp": vjp}
    try:
        assert softgrad.register(impl) is impl
        assert softgrad.register(impl) is impl, "the same object twice is not an error"
        with pytest.raises(ValueError, match="already registered"):
            softgrad.register(softgrad.Implementation.from_ops("from-ops-demo", softmax=jacobian))
    finally:
        softgrad.unregister(impl.name)


def test_a_plugin_module_imported_by_a_test_and_loaded_as_a_plugin_registers_once(tmp_path, monkeypatch):
    plugin = tmp_path / "my_entries.py"
    plugin.write_text(textwrap.dedent("""
        import scipy.special
        import softgrad

        def softmax(x):
            return scipy.special.softmax(x, axis=-1)

        ENTRY = softgrad.register(softgrad.Implementation.from_ops("twice-demo", softmax=softmax))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        import my_entries  # the test suite imports the module ...

        registry.load_plugin(plugin)  # ... and SOFTGRAD_PLUGINS names the same file
        assert registry.get("twice-demo") is my_entries.ENTRY
    finally:
        registry.unregister("twice-demo")
        registry._LOADED_PLUGINS.discard(plugin.resolve())
        sys.modules.pop("my_entries", None)


# --- entry points of installed distributions -------------------------------------------------------------


def _distribution(site: Path, name: str, version: str, entry_points: str, modules: dict[str, str]) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[softgrad.implementations]\n{entry_points}\n")
    for module, text in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    _distribution(site, "goodlib", "1.2.3", "goodlib = goodlib_softgrad:ENTRIES", {"goodlib_softgrad": """
        import numpy as np
        import softgrad

        def softmax(x):
            e = np.exp(x - x.max(-1, keepdims=True)) if x.shape[-1] else x.copy()
            return (e / e.sum(-1, keepdims=True)).astype(x.dtype) if x.shape[-1] else e

        ENTRIES = [softgrad.Implementation.from_ops("goodlib-softmax", softmax=softmax)]
    """})
    _distribution(site, "brokenlib", "0.1", "brokenlib = brokenlib_softgrad", {"brokenlib_softgrad": """
        raise ImportError("brokenlib needs a GPU driver")
    """})
    return site


def _softgrad(*args: str, site: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "SOFTGRAD_HOME": str(home)}
    env.pop("SOFTGRAD_ENTRY_POINTS_WARNED", None)
    env.pop("SOFTGRAD_ENTRY_POINTS_PROBED", None)
    return subprocess.run([sys.executable, "-m", "softgrad.cli", *args], capture_output=True, text=True, env=env,
                          cwd=home, timeout=600)


def test_an_installed_distributions_entries_are_listed_checked_run_and_chosen_and_a_broken_one_warns(site, tmp_path):
    proc = _softgrad("list", site=site, home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("goodlib-softmax"))
    assert "available, from goodlib 1.2.3" in row
    warnings = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("softgrad: warning: entry point 'brokenlib'") and "brokenlib 0.1" in warnings[0]
    assert "ImportError: brokenlib needs a GPU driver" in warnings[0]
    proc = _softgrad("check", "--impl", "goodlib-softmax", "--quick", "--dtype", "float64", site=site,
                     home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.count("softgrad: warning:") == 1, "the check's workers stay quiet"
    # timed like a built-in (asv drops PYTHONPATH: the distribution is still discovered), stored with its version
    proc = _softgrad("run", "--quick", "--impl", "goodlib-softmax", "--no-agreement", site=site, home=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (meta,) = (tmp_path / "results" / "runs").glob("*/meta.json")
    assert json.loads(meta.read_text())["distributions"] == {"goodlib-softmax": {"distribution": "goodlib",
                                                                                 "version": "1.2.3"}}
    proc = _softgrad("choose", "--op", "softmax", "--n", "1024", "--batch", "1", "--dtype", "float32", site=site,
                     home=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith("goodlib-softmax: "), proc.stdout + proc.stderr


def test_entry_points_register_in_process_and_go_into_a_runs_metadata(site, monkeypatch, tmp_path):
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))  # the entry points' probe verdicts are cached there
    monkeypatch.setenv("SOFTGRAD_ENTRY_POINTS_PROBED", "{}")  # ... and handed to child processes in this one
    monkeypatch.syspath_prepend(str(site))
    try:
        problems = registry.load_entry_points()
        assert len(problems) == 1 and "brokenlib" in problems[0]
        assert registry.get("goodlib-softmax").describe()["distribution"] == {"distribution": "goodlib",
                                                                              "version": "1.2.3"}
        assert registry.distributions()["goodlib-softmax"]["version"] == "1.2.3"
        assert registry.load_entry_points() == problems, "loading again registers nothing twice"
    finally:
        registry.unregister("goodlib-softmax")
        sys.modules.pop("goodlib_softgrad", None)
    assert "goodlib-softmax" not in registry.distributions()


def test_an_entry_point_that_fails_half_way_is_rolled_back_whole_and_the_warning_says_which_and_why(
        tmp_path, monkeypatch):
    """A module that registers an entry and then raises, and a list with one bad entry (a built-in's name):
    neither leaves any of its entries registered, and each problem names the entry point, what was rolled
    back and why."""
    site = tmp_path / "site"
    _distribution(site, "halflib", "2.0", "halflib = halflib_softgrad", {"halflib_softgrad": """
        import numpy as np
        import softgrad

        def softmax(x):
            return x

        softgrad.register(softgrad.Implementation.from_ops("halflib-first", softmax=softmax))
        raise RuntimeError("halflib's second entry needs a GPU")
    """})
    _distribution(site, "listlib", "3.1", "listlib = listlib_softgrad:ENTRIES", {"listlib_softgrad": """
        import softgrad

        def softmax(x):
            return x

        ENTRIES = [softgrad.Implementation.from_ops("listlib-good", softmax=softmax),
                   softgrad.Implementation.from_ops("numpy", softmax=softmax)]
    """})
    registry.load_builtins()  # "numpy" is the built-in's
    names = {i.name for i in registry.all_implementations()}
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.setenv("SOFTGRAD_ENTRY_POINTS_PROBED", "{}")
    monkeypatch.syspath_prepend(str(site))
    try:
        problems = sorted(registry.load_entry_points())
        assert {i.name for i in registry.all_implementations()} == names, "all or nothing"
        assert "halflib-first" not in registry.distributions() and "listlib-good" not in registry.distributions()
        assert len(problems) == 2, problems
        half, listed = problems
        assert half.startswith("entry point 'halflib' (halflib_softgrad) of distribution halflib 2.0 failed to load")
        assert "none of its entries is registered (rolled back: halflib-first)" in half
        assert half.endswith("RuntimeError: halflib's second entry needs a GPU")
        assert listed.startswith("entry point 'listlib' (listlib_softgrad:ENTRIES) of distribution listlib 3.1")
        assert "(rolled back: listlib-good)" in listed and "ValueError: an implementation named 'numpy'" in listed
        assert sorted(registry.load_entry_points()) == problems
        assert {i.name for i in registry.all_implementations()} == names, "loading again rolls back again"
    finally:
        for name in ("halflib-first", "listlib-good"):
            registry.unregister(name)
        for module in ("halflib_softgrad", "listlib_softgrad"):
            sys.modules.pop(module, None)


def test_a_plugin_file_that_fails_half_way_is_rolled_back_whole():
    plugin = Path(__file__).parent / "plugins" / "registers_then_raises.py"
    with pytest.raises(registry.PluginError) as exc:
        registry.load_plugin(plugin)
    assert str(exc.value) == (f"plugin {plugin} failed to import (rolled back: plugin-half-registered): "
                              f"RuntimeError: the plugin's second entry needs a GPU")
    assert "plugin-half-registered" not in {i.name for i in registry.all_implementations()}
    assert str(plugin.resolve()) not in registry.loaded_plugins()


def test_an_entry_point_that_ends_the_process_at_import_is_left_out_once_and_for_all(site, tmp_path):
    """``os._exit(7)`` or a segfault while an entry point is imported cannot be caught in the process: each
    entry point is first imported in a probe process, once per distribution version (the verdict is cached
    under the home's cache), and one that ends its probe is left out with a warning; every command still runs."""
    counter = tmp_path / "imports-of-exitlib"
    _distribution(site, "exitlib", "0.7", "exitlib = exitlib_softgrad", {"exitlib_softgrad": f"""
        import os

        with open({str(counter)!r}, "a") as f:
            f.write("x")
        os._exit(7)
    """})
    _distribution(site, "seglib", "0.1", "seglib = seglib_softgrad", {"seglib_softgrad": """
        import os
        import signal

        os.kill(os.getpid(), signal.SIGSEGV)
    """})
    for _ in range(2):
        proc = _softgrad("list", site=site, home=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert any(line.startswith("goodlib-softmax") for line in proc.stdout.splitlines()), proc.stdout
        warnings = sorted(line for line in proc.stderr.splitlines() if line.strip())
        assert len(warnings) == 3 and all(w.startswith("softgrad: warning: entry point '") for w in warnings), warnings
        broken, exits, segv = warnings
        assert "'brokenlib'" in broken and "ImportError: brokenlib needs a GPU driver" in broken
        assert "'exitlib'" in exits and "exitlib 0.7" in exits and "exit status 7" in exits, exits
        assert "'seglib'" in segv and "SIGSEGV" in segv, segv
    assert counter.read_text() == "x", "probed once, then known from the cache: never imported in process"
    assert len(list((tmp_path / "results" / "cache" / "entry-points").glob("*.json"))) == 4


def test_an_entry_point_that_hangs_at_import_is_left_out_after_the_probe_limit(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _distribution(site, "hanglib", "1.0", "hanglib = hanglib_softgrad", {"hanglib_softgrad": """
        import time

        time.sleep(3600)
    """})
    monkeypatch.setenv("SOFTGRAD_HOME", str(tmp_path))
    monkeypatch.setenv("SOFTGRAD_ENTRY_POINTS_PROBED", "{}")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "PROBE_TIMEOUT_S", 2.0)
    t0 = time.monotonic()
    (problem,) = registry.load_entry_points()
    assert time.monotonic() - t0 < 30
    assert "'hanglib'" in problem and "importing it did not finish within 2 s" in problem, problem
    assert "hanglib_softgrad" not in sys.modules
    t0 = time.monotonic()
    assert registry.load_entry_points() == [problem] and time.monotonic() - t0 < 1, "known: not probed again"
    monkeypatch.setenv("SOFTGRAD_ENTRY_POINTS_PROBED", "{}")  # a new process: the verdict is in the cache
    assert registry.load_entry_points() == [problem] and time.monotonic() - t0 < 1.5


# --- the documentation's examples (tests/test_docs.py checks each page shows the files exactly) ------------


def test_the_readme_torch_function_with_the_sum_dropped_from_its_backward_is_caught():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("example_torch_function", EXAMPLES / "test_check_torch_function.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    class Shipped(example.Softmax):
        @staticmethod
        def backward(ctx, g):  # the shipped bug: s * g, without - sum(g * s)
            (s,) = ctx.saved_tensors
            return s * g

    def vjp(x, g):
        x = x.detach().requires_grad_(True)
        return example.torch.autograd.grad(Shipped.apply(x), x, g)[0]

    with pytest.raises(AssertionError) as exc:
        check(softmax=Shipped.apply, vjp=vjp, backend="torch", dtypes=("float32",))
    lines = _failures(exc)
    assert lines and all(" vjp float32 cpu case " in x for x in lines), "the forward is right, the backward not"
    assert any("case normal-1 (8, 37): FAIL [accuracy, vjp-sums-to-zero" in x for x in lines), lines
