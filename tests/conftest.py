import importlib.util
import re
import sys
from pathlib import Path

import pytest


sys.path.insert(0, str(Path(__file__).parent))  # tests/mutants.py, tests/helpers

#: packages of the dev extras that some test modules import at their top: without them (the NumPy-only
#: install) those modules are left out of collection, named in the header, instead of failing to collect
OPTIONAL = ("hypothesis", "pandas", "scipy", "matplotlib")
_missing = [name for name in OPTIONAL if importlib.util.find_spec(name) is None]
collect_ignore: list[str] = []
_left_out: dict[str, list[str]] = {}
for _path in sorted(Path(__file__).parent.rglob("test_*.py")) if _missing else ():
    _text = _path.read_text()
    _needs = [name for name in _missing if re.search(rf"^(from|import) {name}\b", _text, re.M)]
    if _needs:
        collect_ignore.append(str(_path))
        _left_out[_path.name] = _needs


def pytest_report_header(config):
    lines = []
    if "hypothesis" not in _missing:  # "ci" (a fixed seed per test) where CI is set, as .ci/run sets it
        from hypothesis import settings

        lines.append(f"hypothesis profile: {settings._current_profile}")
    if _left_out:
        lines.append(f"left out, for want of {', '.join(_missing)}: "
                     + ", ".join(f"{name} ({', '.join(needs)})" for name, needs in _left_out.items()))
    return lines



#: test modules that declare a module- or session-scoped fixture (the conformance suite's one check of every
#: case, a report built once per module): under ``-n 2 --dist loadgroup`` each runs whole on one worker
SHARED_FIXTURE_MODULES = frozenset(
    _path.relative_to(Path(__file__).parent.parent).as_posix()
    for _path in Path(__file__).parent.rglob("test_*.py")
    if re.search(r"@pytest\.fixture\(scope=[\"'](module|session|package)", _path.read_text()))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: the NumPy-only install has no xdist
def pytest_xdist_make_scheduler(config, log):
    """``make test``'s schedule: tests dealt out one by one (no long file decides the run's length), except
    the modules of :data:`SHARED_FIXTURE_MODULES`, each sent whole to one worker (largest first), so that their
    shared fixture is built once. This is what ``--dist loadgroup`` means here: pytest-xdist 3.8's own
    ``xdist_group`` marker does not group under pytest 9 (it renames ``item._nodeid``, which pytest 9 no
    longer reads), so the groups are named by module here instead."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixturesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    return SharedFixturesTogether(config, log)
