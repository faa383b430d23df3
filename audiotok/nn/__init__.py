"""Layers and helpers shared by several models."""
