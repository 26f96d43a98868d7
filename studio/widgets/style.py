"""The studio's look: Fusion with a light palette and a small stylesheet."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#2b6cb0"

STYLESHEET = f"""
QMainWindow, QWidget {{ font-size: 10pt; }}
QLabel#muted {{ color: #4a5568; }}
QLabel#warning {{ color: #975a16; background: #fffaf0; border: 1px solid #fbd38d; border-radius: 5px; padding: 4px 6px; }}
QLabel#sectionTitle {{ color: #718096; font-size: 8pt; font-weight: bold; letter-spacing: 1px; padding: 4px 2px; }}
QLabel#runTitle {{ font-size: 14pt; font-weight: 600; color: #1a202c; }}
QLabel#emptyState {{ color: #4a5568; font-size: 11pt; }}
QLabel#validation {{ font-size: 10pt; }}
QFrame#card {{ background: white; border: 1px solid #e2e8f0; border-radius: 10px; }}
QFrame#errorBanner {{ background: #fff5f5; border: 1px solid #feb2b2; border-radius: 6px; margin: 0 12px; }}
QLabel#errorText {{ color: #9b2c2c; }}
QPushButton {{ padding: 5px 14px; border: 1px solid #cbd5e0; border-radius: 5px; background: #ffffff; }}
QPushButton:hover {{ background: #edf2f7; }}
QPushButton:disabled {{ color: #a0aec0; background: #f7fafc; }}
QPushButton#primary {{ background: {ACCENT}; color: white; border: 1px solid {ACCENT}; font-weight: 600; padding: 7px 18px; }}
QPushButton#primary:hover {{ background: #2c5282; }}
QPushButton#primary:disabled {{ background: #a3bffa; border-color: #a3bffa; }}
QToolButton#controlButton {{ padding: 4px 10px; border: 1px solid #cbd5e0; border-radius: 5px; background: white; }}
QToolButton#controlButton:hover {{ background: #edf2f7; }}
QToolButton#controlButton:disabled {{ color: #a0aec0; background: #f7fafc; border-color: #e2e8f0; }}
QProgressBar {{ border: 1px solid #cbd5e0; border-radius: 5px; background: #edf2f7; text-align: center; color: #1a202c; }}
QProgressBar::chunk {{ background: #90cdf4; border-radius: 4px; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{ padding: 6px 16px; border: none; color: #4a5568; }}
QTabBar::tab:selected {{ color: {ACCENT}; border-bottom: 2px solid {ACCENT}; font-weight: 600; }}
QTableView#runsTable {{ selection-background-color: {ACCENT}; }}
QGroupBox {{ font-weight: 600; border: 1px solid #e2e8f0; border-radius: 6px; margin-top: 12px; padding-top: 6px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #2d3748; }}
QDockWidget::title {{ padding: 4px 8px; background: #edf2f7; color: #4a5568; }}
"""


def apply_style(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Window, QColor("#f7f8fa"))
    palette.setColor(QPalette.ColorRole.Base, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor("#f7fafc"))
    palette.setColor(QPalette.ColorRole.Text, QColor("#1a202c"))
    palette.setColor(QPalette.ColorRole.WindowText, QColor("#1a202c"))
    palette.setColor(QPalette.ColorRole.Button, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.ButtonText, QColor("#1a202c"))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.ToolTipBase, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.ToolTipText, QColor("#1a202c"))
    app.setPalette(palette)
    font = QFont(app.font())
    if font.pointSize() < 9:
        font.setPointSize(10)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)
