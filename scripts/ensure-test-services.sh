#!/bin/sh
# The tests start their own Redis and PostgreSQL servers on loopback (tests/services.py)
# and drive Debian's headless Chromium (tests/browser) and check /metrics with promtool; this
# installs the Debian packages that provide them, when they are missing.
set -eu
need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need="$need postgresql"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
[ -z "$need" ] && exit 0
echo "installing for the tests:$need"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -q
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need
