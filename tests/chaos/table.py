"""The chaos table: one row per scenario, printed at the end of the test run."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from tests.chaos.ledger import Accounting

COLUMNS = ("scenario", "faults", "jobs popped", "ids popped", "ok", "faulted", "dropped", "lost",
           "double reports", "orphans", "crashes")  # fmt: skip


@dataclass
class ScenarioRow:
    """What one scenario injected and how every id and process ended."""

    name: str
    faults: collections.Counter[str]
    accounting: Accounting
    orphans: list[str]  # `pid (status, command line)`
    crashes: list[str]
    unfired: list[str] = field(default_factory=list)

    def cells(self) -> tuple[str, ...]:
        """The row as table cells."""
        a = self.accounting
        figures = (self.faults.total(), a.popped_jobs, a.popped_ids, len(a.ok), len(a.faulted), len(a.dropped),
                   len(a.lost), len(a.double_reports), len(self.orphans), len(self.crashes))  # fmt: skip
        return (self.name, *(str(figure) for figure in figures))


@dataclass
class ChaosTable:
    """Rows collected over the session."""

    rows: list[ScenarioRow] = field(default_factory=list)

    def add(self, row: ScenarioRow) -> None:
        """Record a scenario's figures (also when its checks then fail)."""
        self.rows.append(row)

    def render(self) -> list[str]:
        """The table, the totals, and per scenario the faults injected and the reasons ids were dropped."""
        body = [row.cells() for row in self.rows]
        totals = [sum(int(row[column]) for row in body) for column in range(1, len(COLUMNS))]
        body.append(("total", *(str(total) for total in totals)))
        widths = [max(len(cells[column]) for cells in [COLUMNS, *body]) for column in range(len(COLUMNS))]

        def line(cells: tuple[str, ...]) -> str:
            first = cells[0].ljust(widths[0])
            return "  ".join([first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))])

        out = [line(COLUMNS), "  ".join("-" * width for width in widths)]
        out += [line(cells) for cells in body]
        out.append("")
        for row in self.rows:
            injected = ", ".join(f"{label} x{count}" for label, count in sorted(row.faults.items()))
            out.append(f"{row.name}: injected {injected or 'nothing'}")
            for reason, count in sorted(row.accounting.drop_summary().items()):
                out.append(f"    dropped x{count}: {reason}")
            for label in row.unfired:
                out.append(f"    NEVER FIRED: {label}")
            for orphan in row.orphans:
                out.append(f"    ORPHAN: pid {orphan}")
            for crash in row.crashes:
                out.append(f"    CRASH: {crash}")
            if row.accounting.lost:
                out.append(f"    LOST: {', '.join(row.accounting.lost)}")
            for job_id, why in sorted(row.accounting.double_reports.items()):
                out.append(f"    DOUBLE REPORT: {job_id} {why}")
        return out
