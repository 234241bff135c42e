"""The subcommands of the worker CLI, one module each."""
