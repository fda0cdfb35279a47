"""The console face of MWARE IAM (Textual).

It holds no business rule: every read and write goes through ``core``. Engine calls run in
thread workers that post messages back; nothing in ``core`` imports this package.
"""

from tui.app import MwareConsole, run_console

__all__ = ["MwareConsole", "run_console"]
