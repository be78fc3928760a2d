"""Weights in and out: our safetensors checkpoints, converters from other layouts, export."""
