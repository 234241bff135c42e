"""Fixtures of the horde-client tests: the local horde session and the pipelines the job tests use."""

from tests.jobs.conftest import horde_session, pipelines  # noqa: F401 (fixtures, found by pytest by their names)
