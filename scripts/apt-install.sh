#!/usr/bin/env bash
# Installs Debian packages quietly (sudo when not root): scripts/apt-install.sh PACKAGE...
# Shared by scripts/setup.sh and the bench scripts; does nothing without arguments.
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "apt-install: installing Debian packages: $*" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
