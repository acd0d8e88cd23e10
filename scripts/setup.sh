#!/usr/bin/env bash
# Installs what building and testing vila2 needs, idempotently, on a fresh machine:
# the wasm32-wasip2 Rust target, and a Python venv (.venv) with torch==2.11.0 (libtorch for
# `tch`) plus the packages the parity tests use to build tiny reference models.
# .venv/torch links to the wheel's torch folder so .cargo/config.toml need not know the
# Python version.
# Debian's chromium and chromium-driver (the browser test drives headless Chromium through
# chromedriver) are installed with apt-get when /usr/bin/chromedriver is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi

have_torch=$(.venv/bin/python -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || true)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (large download, once)"
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi

if [ ! -x /usr/bin/chromedriver ]; then
  echo "setup: installing chromium and chromium-driver (apt-get) for the browser test"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    chromium chromium-driver
fi

req=tests/parity/requirements.txt
stamp=.venv/.parity-requirements
if [ -f "$req" ] && ! cmp -s "$req" "$stamp"; then
  echo "setup: installing $req"
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi

torch_dir=$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')
ln -sfn "$torch_dir" .venv/torch
echo "setup: ok (libtorch at .venv/torch -> $torch_dir)"
