"""Pipeline tests: the worker against the local horde."""
