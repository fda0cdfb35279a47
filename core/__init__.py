"""MWARE IAM headless engine. Never imports Textual."""

__version__ = "0.1.0"
