"""Tests of the local horde."""
