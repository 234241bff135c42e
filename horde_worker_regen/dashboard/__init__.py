"""The web dashboard served by the worker's main process: a page, /status.json, /metrics and /healthz."""
