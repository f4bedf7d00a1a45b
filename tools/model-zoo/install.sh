#!/usr/bin/env bash
# Installs the Python dependencies of the model zoo from Debian packages.
# Use /usr/bin/python3 afterwards (Debian's interpreter sees these packages).
set -euo pipefail
PKGS=(python3 python3-torch python3-torchvision python3-scipy python3-numpy python3-pil python3-onnx)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "model-zoo: all packages already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
