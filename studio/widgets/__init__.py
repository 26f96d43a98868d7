"""Widgets: the main window, home, launcher, run dashboard, sidebar, and the issue-5 views."""
