"""The tiers: the plugin marks each test by the fixtures it uses, so ``-m "not slow"`` leaves out
every test that needs SeaweedFS, a real client or a browser."""

from __future__ import annotations

import pytest

TESTS = '''
import pytest

from tests.support.plugin import storage_params


def test_plain(tmp_path):
    pass


def test_on_s3(s3_settings):
    pass


def test_with_skopeo(skopeo):
    pass


def test_in_a_browser(browser):
    pass


def test_against_registry2(registry2_available):
    pass


@pytest.mark.parametrize("storage", storage_params(["filesystem", "s3"]))
def test_on_each_storage(storage):
    pass
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest('''
import pytest

pytest_plugins = ["tests.support.plugin"]


@pytest.fixture
def browser():
    pass


@pytest.fixture
def registry2_available():
    pass
''')
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_suite=TESTS)
    return pytester


TIERS = {"slow", "s3", "clients", "browser"}


def test_markers_follow_the_fixtures(suite: pytest.Pytester) -> None:
    items, _ = suite.inline_genitems()  # collected only: no service is started
    tiers = {item.name: sorted(TIERS & {mark.name for mark in item.iter_markers()}) for item in items}
    assert tiers == {
        "test_plain": [],
        "test_on_s3": ["s3", "slow"],
        "test_with_skopeo": ["clients", "slow"],
        "test_in_a_browser": ["browser", "slow"],
        "test_against_registry2": ["slow"],
        "test_on_each_storage[filesystem]": [],
        "test_on_each_storage[s3]": ["s3", "slow"],
    }


def test_the_fast_loop_leaves_the_slow_tests_out(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-m", "not slow")
    result.assert_outcomes(passed=2, deselected=5)
