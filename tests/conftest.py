import importlib.util
import re
import sys
from pathlib import Path

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
