#!/usr/bin/env bash
# Add RL Studio to the desktop's application menu (per user, freedesktop.org: GNOME, KDE, Xfce, ...).
# Needs `rl-studio` on PATH (pip install rl-studio), or pass the command to run: ./install_desktop_entry.sh /opt/rl-studio/rl-studio
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps"
icon="$here/../engine/assets/icons/rl-studio.svg"  # in a checkout; else the installed package's copy
[ -f "$icon" ] || icon="$("${PYTHON:-python3}" -c 'from engine.contract.paths import ICON; print(ICON)')"
cp "$icon" "$data/icons/hicolor/scalable/apps/rl-studio.svg"
if [ $# -ge 1 ]; then
  sed -e "s|^Exec=rl-studio|Exec=$1|" -e "s|^TryExec=rl-studio|TryExec=$1|" "$here/rl-studio.desktop" \
    > "$data/applications/rl-studio.desktop"
else
  cp "$here/rl-studio.desktop" "$data/applications/rl-studio.desktop"
fi
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q "$data/icons/hicolor" || true
echo "installed $data/applications/rl-studio.desktop"
