"""make test's schedule (tests/conftest.py): tests dealt out one by one, modules sharing a fixture kept whole."""

import conftest


def test_modules_that_share_a_fixture_are_kept_whole_and_the_rest_dealt_out_one_by_one():
    shared = conftest.SHARED_FIXTURE_MODULES
    assert "tests/test_conformance.py" in shared, "the one check of every conformance case would run twice"
    assert "tests/test_report_content.py" in shared
    assert "tests/test_mutants.py" not in shared and "tests/test_registry.py" not in shared
