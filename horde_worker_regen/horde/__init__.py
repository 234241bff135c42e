"""Talking to the AI Horde API."""
