"""Unit tests of the pipeline's parts: lifecycles, slots, the safety link, restarts, the wiring."""
