"""The logging layer: secret redaction, routing of third-party output, resilient log files, process hooks.

`horde_worker_regen.logs.setup.configure_logging` puts the pieces together for one process.
"""
