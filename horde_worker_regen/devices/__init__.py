"""GPUs: finding them (in a short-lived child), pinning a child to one, and planning slots per GPU."""
