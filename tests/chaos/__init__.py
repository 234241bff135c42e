"""The chaos suite: the real worker against the local horde while faults are injected."""
