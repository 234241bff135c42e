"""The image model reference, model selection inputs and (later) model files."""
