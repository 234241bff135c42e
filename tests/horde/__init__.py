"""Tests of horde_worker_regen.horde."""
