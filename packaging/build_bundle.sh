#!/usr/bin/env bash
# Build the standalone bundle (dist/rl-studio/) and check that it starts: it renders a screenshot
# offscreen from a fresh workspace and must not contain a training library. See packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -m PyInstaller packaging/rl-studio.spec --noconfirm --distpath dist --workpath build/pyinstaller
test -x dist/rl-studio/rl-studio
if find dist/rl-studio -maxdepth 3 -iname 'torch*' | grep -q .; then
  echo "the bundle contains torch: check the spec's excludes" >&2
  exit 1
fi
tmp=$(mktemp -d)
QT_QPA_PLATFORM=offscreen RL_STUDIO_HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/config" \
  dist/rl-studio/rl-studio --screenshot "$tmp/home.png" --view home
test -s "$tmp/home.png"
du -sh dist/rl-studio
echo "bundle OK: dist/rl-studio/rl-studio (smoke screenshot $tmp/home.png)"
