"""Loading and validating the worker configuration (bridgeData.yaml)."""
