#!/bin/sh
# Set up (or bring up to date) the project's virtualenv from the lock file, and the
# one system package the tests need: Debian's redis-server (the shared-gate tests
# start their own on a free loopback port). Needs only python3: uv itself is
# installed into .tools/ with pip.
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

# redis-server, only if it is missing: apt-get, non-interactive (as root, or with sudo
# that needs no password); otherwise say what to do. The Redis tests fail without it.
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo -n"
    else
        as_root="none"
    fi
    if [ "$as_root" != none ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing redis-server (Debian) for the tests" >&2
        $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends redis-server >/dev/null
    else
        echo "setup: redis-server is missing: install it (apt-get install redis-server)" >&2
    fi
fi
