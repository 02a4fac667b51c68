"""make test's schedule (tests/conftest.py): tests dealt out one by one, modules sharing a fixture kept whole."""

from pathlib import Path


def _suite_conftest(config):
    """tests/conftest.py as pytest loaded it (``import conftest`` may find another folder's conftest)."""
    path = Path(__file__).with_name("conftest.py")
    (plugin,) = [p for p in config.pluginmanager.get_plugins() if getattr(p, "__file__", None) == str(path)]
    return plugin


def test_modules_that_share_a_fixture_are_kept_whole_and_the_rest_dealt_out_one_by_one(request):
    shared = _suite_conftest(request.config).SHARED_FIXTURE_MODULES
    assert "tests/test_conformance.py" in shared, "the one check of every conformance case would run twice"
    assert "tests/test_report_content.py" in shared
    assert "tests/test_mutants.py" not in shared and "tests/test_registry.py" not in shared
