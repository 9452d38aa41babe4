#!/bin/sh
# Set up (or bring up to date) the project's virtualenv from the lock file.
# Needs only python3: uv itself is installed into .tools/ with pip.
set -eu
cd "$(dirname "$0")/.."
export UV_PYTHON_DOWNLOADS=never   # use this machine's python3, never download one
if [ ! -x .tools/bin/uv ]; then
    python3 -m venv .tools
    .tools/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
fi
# --locked: install exactly uv.lock, and fail if pyproject.toml and the lock disagree.
# --compile-bytecode: write the .pyc files now (once; later runs check them in about
# a second), so the first `llmpipe` does not compile litellm's thousands of modules,
# and an environment with PYTHONDONTWRITEBYTECODE=1 does not compile them every run.
.tools/bin/uv sync --locked --quiet --python python3 --compile-bytecode
