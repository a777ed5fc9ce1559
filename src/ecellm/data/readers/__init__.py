"""Streaming readers for the official raw formats (layout of ../shared/raw/README.md)."""
