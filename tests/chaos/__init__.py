"""The chaos suite: the real worker CLI against the embedded local horde while faults are injected.

Each test is one scenario: one or more runs of the worker (fake backends, real child processes),
faults switched on in the horde (`localhorde/faults.py`), signals sent to the worker and its
children by PID (found with psutil from the worker's PID), hostile payloads and sources. Each
scenario then checks its own invariants and adds a row to the table printed at the end of the test
session (`conftest.py`):

- every id the horde handed out ended submitted ok, faulted, or dropped with a logged reason (an id
  in none of these is *lost*), read from the horde's own records (`ledger.py`);
- no id was reported twice: submitted again after the horde applied a submit of it, unless the
  answer to an earlier submit was lost to a `drop` fault, or both stored ok and reported faulted
  (*double reports*), from every submit the horde received (`HordeState.submit_attempts`);
- no process of the worker's tree outlives it (*orphans*);
- no run of the worker exited other than as the scenario expected, or logged a traceback (*crashes*).

Run it alone with `.venv/bin/python -m pytest tests/chaos -q`.
"""
