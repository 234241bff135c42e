"""Inference backends: the interface the inference child drives, and the fake one."""
