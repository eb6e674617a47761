#!/usr/bin/env bash
# Set up the workbench in ./.venv. `--test` also installs the test tools and Chromium.
#
# torch: on a CPU machine this installs torch 2.13.0 first (a CPU wheel where one is on local
# disk; elsewhere set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to avoid the CUDA
# build). CUDA users: install the torch build for your CUDA into .venv first (see README);
# a torch that is already installed is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
[[ "${1:-}" == "--test" ]] && with_tests=1

python=""
for candidate in python3.11 python3.12 python3.13 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    python=$candidate
    break
  fi
done
if [[ -z "$python" ]]; then
  echo "error: the workbench needs Python >= 3.11; install it and retry" >&2
  exit 1
fi

[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  "${pip[@]}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
fi
if [[ $with_tests == 1 ]]; then
  "${pip[@]}" -e ".[test]"
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
else
  "${pip[@]}" -e .
fi
echo "workbench is set up in .venv; activate it for the \`workbench\` command:"
echo "  source .venv/bin/activate"
