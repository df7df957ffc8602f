"""Under CI=true a skipped test fails unless it needs a CUDA GPU (tests/conftest.py), so a missing install step or a
changed dependency cannot leave CI green with the test unrun."""
from pathlib import Path

import pytest

pytest_plugins = "pytester"

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_some="""
        import pytest

        def test_runs():
            pass

        def test_a_missing_dependency():
            pytest.importorskip("no_such_module_anywhere")

        @pytest.mark.skipif(True, reason="needs a CUDA GPU")
        def test_on_a_gpu():
            pass
    """)
    return pytester


def test_a_skip_under_ci_fails_unless_it_needs_cuda(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*skipped under CI=true*no_such_module_anywhere*"])


def test_outside_ci_a_skip_is_a_skip(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    suite.runpytest("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=2)
