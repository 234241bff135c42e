"""horde-worker-reGen: an AI Horde image worker."""

__version__ = "0.1.0"
