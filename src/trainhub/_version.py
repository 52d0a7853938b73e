"""The version of trainhub, in one place that imports nothing (the server reads it too)."""

__version__ = "0.1.0"
