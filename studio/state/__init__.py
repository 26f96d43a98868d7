"""GUI state without widgets: the workspace, the engines, the metric series, what is selected."""
