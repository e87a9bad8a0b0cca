"""Every shared fixture, and the test tiers, come from the plugin in ``tests/support``."""

pytest_plugins = ["pytester", "tests.support.plugin"]
