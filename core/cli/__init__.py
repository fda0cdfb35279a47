"""The command-line face (click): ``main.py`` is the lazily loading root group, one module
per command group. Nothing outside this package imports it (``[tool.importlinter]`` in
pyproject.toml)."""
