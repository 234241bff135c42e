"""The chaos suite's table: every scenario adds a row; the table is printed at the end of the run."""

from __future__ import annotations

import pytest

from tests.chaos.table import ChaosTable

TABLE_KEY = pytest.StashKey[ChaosTable]()


@pytest.fixture(scope="session")
def chaos_table(request: pytest.FixtureRequest) -> ChaosTable:
    """The session's table (kept on the config so the terminal summary can print it)."""
    return request.config.stash.setdefault(TABLE_KEY, ChaosTable())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Print the chaos table after the test results."""
    table = config.stash.get(TABLE_KEY, None)
    if table is None or not table.rows:
        return
    terminalreporter.section("chaos: faults injected and where every id ended")
    for text in table.render():
        terminalreporter.write_line(text)
