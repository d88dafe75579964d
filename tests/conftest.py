"""Suite-wide settings."""

from hypothesis import settings

# CI shares a 2-core machine with the broker and the sandbox: a per-example deadline would fail
# on scheduling noise, not on the code. Test durations are bounded by pytest-timeout instead.
settings.register_profile("project", deadline=None)
settings.load_profile("project")
