"""Qt item models over the workspace, loaded in pages (canFetchMore / fetchMore)."""
