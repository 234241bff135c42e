"""What the operator sees while the worker runs."""
