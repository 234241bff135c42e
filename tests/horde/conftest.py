"""Fixtures of the horde-client tests: the local horde session the job tests use."""

from tests.jobs.conftest import horde_session  # noqa: F401 (a fixture, found by pytest by its name)
