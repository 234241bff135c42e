"""What the worker and the local horde both speak: names and constants of the horde's contract."""
