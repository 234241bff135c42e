"""The terminal UI: the running worker at a glance over SSH, attached through its status API or in `run --tui`."""
