"""What the CLI needs from the console's toolkit, so that ``core`` never imports Textual.

The CLI (``core/cli``) imports this module only inside the commands that start a console.
"""

from __future__ import annotations


def theme_names() -> list[str]:
    """The themes ``--theme`` accepts."""
    from textual.theme import BUILTIN_THEMES

    return sorted(BUILTIN_THEMES)


def browser_serving_available() -> bool:
    """Whether the optional ``web`` extra (textual-serve) can be imported."""
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        return False
    return True


def serve_in_browser(command: str, host: str, port: int, title: str) -> None:
    """Serve the console that ``command`` starts to browsers on ``host:port`` until stopped."""
    from textual_serve.server import Server

    Server(command, host=host, port=port, title=title).serve()
