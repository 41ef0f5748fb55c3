"""Kavi: a git-native governed skill forge."""

__version__ = "0.1.0"
