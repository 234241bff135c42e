"""Child processes: the typed messages they exchange, their entry points and their supervisor."""
