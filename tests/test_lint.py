"""The code checks that run with the suite: ruff's lint rules and layout, strict mypy on the package, the
tests and the benches, and the import layers of `[tool.importlinter]` in pyproject.toml.

Each test fails with the tool's own report, so a red run says what to fix and where. The last test
proves that the import check really catches the two mistakes it exists for: an import from a lower
layer up into a higher one, and an import cycle between the modules of a package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

# A cold mypy run (a clean clone has no cache) is the slowest of these; the limit only catches a hang.
TOOL_TIMEOUT_S = 900
TYPED_TREES = ("horde_worker_regen", "tests", "bench")
PYTHON = [sys.executable]
# import-linter has no `python -m` entry; its script sits beside this interpreter (bin/ or Scripts/).
LINT_IMPORTS = [
    shutil.which("lint-imports", path=sysconfig.get_path("scripts")) or "lint-imports",
    "--no-cache",
    "--no-logo",
]


def _run_tool(
    command: list[str], cwd: Path = REPO_ROOT, python_path: Path = REPO_ROOT
) -> subprocess.CompletedProcess[str]:
    """Run a tool on the package found in `python_path` (not on an installed copy of it)."""
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(python_path), environ.get("PYTHONPATH")]))
    return subprocess.run(
        command,
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=TOOL_TIMEOUT_S,
    )


def _report(result: subprocess.CompletedProcess[str]) -> str:
    command = " ".join([Path(result.args[0]).name, *result.args[1:]])
    return f"`{command}` exited {result.returncode}:\n{result.stdout}{result.stderr}"


def _passes(result: subprocess.CompletedProcess[str]) -> None:
    """Fail with the tool's report alone (no traceback of this file) unless the tool passed."""
    if result.returncode != 0:
        pytest.fail(_report(result), pytrace=False)


def test_ruff_finds_no_lint_problem() -> None:
    # --no-cache: nothing is written into the checkout, and two checks may run at once.
    result = _run_tool([*PYTHON, "-m", "ruff", "check", "--no-cache", "."])
    _passes(result)


def test_every_file_is_in_ruff_format_layout() -> None:
    result = _run_tool([*PYTHON, "-m", "ruff", "format", "--check", "--no-cache", "."])
    _passes(result)


def test_strict_mypy_passes_on_the_package_the_tests_and_the_benches() -> None:
    # Strictness and plugins come from [tool.mypy] in pyproject.toml; the cache lives in the ignored
    # .mypy_cache, so only the first run on a checkout pays for a full analysis.
    result = _run_tool([*PYTHON, "-m", "mypy", *TYPED_TREES])
    _passes(result)


def test_imports_follow_the_layers() -> None:
    # --no-cache: the graph builds in well under a second, and a cache would be a new file in the checkout.
    result = _run_tool(LINT_IMPORTS)
    _passes(result)


def _copy_of_the_package(target: Path) -> Path:
    """The package and the contracts in pyproject.toml, in a directory of their own."""
    shutil.copytree(
        REPO_ROOT / "horde_worker_regen",
        target / "horde_worker_regen",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


UPWARD = "Layers: each imports only from the layers below it"
CYCLE = "No import cycle between the modules of any package"


@dataclass(frozen=True)
class Mistake:
    """A bad import written into a copy of the package, and what the import check must say about it."""

    new_modules: dict[str, str]  # file name in jobs/ -> its source
    added_to_spec: str  # appended to jobs/spec.py, the domain types at the bottom of the layers
    broken_contract: str
    report_names: tuple[str, ...]  # how the report points at the bad import


MISTAKES = {
    "domain-types-import-the-pipeline": Mistake(
        new_modules={},
        added_to_spec="from horde_worker_regen.pipeline import pipeline as _pipeline\n",
        broken_contract=UPWARD,
        report_names=("horde_worker_regen.jobs.spec -> horde_worker_regen.pipeline.pipeline",),
    ),
    "spec-and-a-sibling-import-each-other": Mistake(
        new_modules={"ledger.py": "from horde_worker_regen.jobs.spec import GenerationSpec as GenerationSpec\n"},
        added_to_spec="from horde_worker_regen.jobs import ledger as _ledger\n",
        broken_contract=CYCLE,
        report_names=("No cycles are allowed in horde_worker_regen.jobs.", ".spec -> .ledger"),
    ),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_the_import_check_catches_an_upward_import_and_a_cycle(tmp_path: Path, name: str) -> None:
    mistake = MISTAKES[name]
    copy = _copy_of_the_package(tmp_path)
    jobs = copy / "horde_worker_regen" / "jobs"
    for file_name, source in mistake.new_modules.items():
        (jobs / file_name).write_text(source)
    spec = jobs / "spec.py"
    spec.write_text(spec.read_text() + mistake.added_to_spec)

    result = _run_tool(LINT_IMPORTS, cwd=copy, python_path=copy)

    report = _report(result)
    said = " ".join(result.stdout.split())  # the report wraps long lines at the terminal's width
    assert result.returncode == 1, report
    assert f"{mistake.broken_contract} BROKEN" in said, report
    assert all(name in said for name in mistake.report_names), report
