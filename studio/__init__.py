"""RL Studio's desktop app (PySide6 + pyqtgraph). Imports nothing from the engine but engine.contract."""

from studio.qt_compat import guard_singleton_refcounts

guard_singleton_refcounts()

__version__ = "0.1.0"
