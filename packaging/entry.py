"""The bundle's entry point (PyInstaller needs a script; `rl-studio` is studio.app:main)."""

import sys

from studio.app import main

if __name__ == "__main__":
    sys.exit(main())
