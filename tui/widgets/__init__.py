"""Widgets of the console, each owning the messages its workers post."""
