#!/usr/bin/env bash
# Install what the testbed needs on a Debian or Ubuntu machine, and only what is missing.
#
# Owns: system packages (apt), Chromium and its driver (browser tier), Suricata 7
# (bookworm-backports on Debian 12), the Python package with its dev extras (the dashboard's
# starlette and uvicorn, selenium), a running Docker engine, and the offline-built testbed image.
# Idempotent and fast when everything is there: every step checks before it acts, and
# `apt-get update` runs only when a package is missing.
#
# Usage: scripts/install.sh [all|python|system|docker]   (default: all)
# Environment: PYTHON (default python3), TESTBED_SKIP_CHROMIUM=1, TESTBED_SKIP_DOCKER=1.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
WHAT=${1:-all}
export DEBIAN_FRONTEND=noninteractive

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else SUDO=(); fi
as_root() {
    if [ "$(id -u)" -ne 0 ] && [ ${#SUDO[@]} -eq 0 ]; then
        die "'$*' needs root: run 'make install' as root (or install sudo)"
    fi
    "${SUDO[@]}" "$@"
}

# ---- distribution ------------------------------------------------------------------------------
DISTRO_ID=unknown; DISTRO_CODENAME=unknown
if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    . /etc/os-release
    DISTRO_ID=${ID:-unknown}; DISTRO_CODENAME=${VERSION_CODENAME:-unknown}
fi

# ---- apt -----------------------------------------------------------------------------------
APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
}
is_installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = "installed" ]; }
apt_install() {  # apt_install [-t SUITE] PKG...
    apt_update_once
    say "apt-get install $*"
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_system_packages() {
    command -v apt-get >/dev/null || die "no apt-get: install nftables iproute2 nmap tcpdump debootstrap docker suricata(>=7) by hand"
    local wanted=(nftables iproute2 nmap tcpdump debootstrap) missing=() pkg
    # docker-ce or an engine of another origin counts: docker.io would conflict with it.
    if [ "${TESTBED_SKIP_DOCKER:-0}" != 1 ] && ! command -v dockerd >/dev/null; then wanted+=(docker.io); fi
    for pkg in "${wanted[@]}"; do is_installed "$pkg" || missing+=("$pkg"); done
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
    install_chromium
    install_suricata
}

install_chromium() {
    # The browser tier (tests/browser: the dashboard driven by Selenium) and the report
    # screenshot test need a headless Chromium and its WebDriver: Debian's chromium and
    # chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver), the same version by
    # construction, so nothing is downloaded at test time.
    [ "${TESTBED_SKIP_CHROMIUM:-0}" = 1 ] && return 0
    local have_browser=0 have_driver=0
    if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then have_browser=1; fi
    if command -v chromedriver >/dev/null; then have_driver=1; fi
    [ "$have_browser" = 1 ] && [ "$have_driver" = 1 ] && return 0
    if [ "$DISTRO_ID" = ubuntu ]; then
        # Ubuntu ships chromium as a snap only; its apt package needs snapd, which may be absent.
        apt_install chromium-browser chromium-chromedriver || say "warning: no chromium (snap-only on Ubuntu); the browser tier will skip"
    else
        apt_install chromium chromium-driver
    fi
}

suricata_major() { suricata -V 2>/dev/null | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1; }

install_suricata() {
    local major
    major=$(suricata_major || true)
    if [ -n "$major" ] && [ "$major" -ge 7 ]; then return 0; fi
    if [ "$DISTRO_ID" = debian ] && [ "$DISTRO_CODENAME" = bookworm ]; then
        # Debian 12 has Suricata 6; version 7 comes from bookworm-backports.
        if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
            say "adding bookworm-backports to apt's sources"
            echo 'deb http://deb.debian.org/debian bookworm-backports main' \
                | as_root tee /etc/apt/sources.list.d/testbed-bookworm-backports.list >/dev/null
            APT_UPDATED=0
        fi
        apt_install -t bookworm-backports suricata
    else
        apt_install suricata
    fi
    major=$(suricata_major || true)
    [ -n "$major" ] && [ "$major" -ge 7 ] || say "warning: suricata ${major:-?} installed; the suricata detector wants 7 or later"
}

# ---- python --------------------------------------------------------------------------------
install_python() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or later"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$PYTHON" -V 2>&1) is too old: the testbed needs Python 3.11 or later (set PYTHON=...)"
    if "$PYTHON" "$REPO/scripts/check_python_deps.py" "$REPO"; then return 0; fi
    "$PYTHON" -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    say "pip install -e '.[dev,ray,gym,redteam]'"
    # PIP_BREAK_SYSTEM_PACKAGES: a Debian system python refuses pip without it (PEP 668); a pyenv
    # or venv python ignores it.
    PIP_BREAK_SYSTEM_PACKAGES=1 "$PYTHON" -m pip install -q --disable-pip-version-check \
        -e "$REPO[dev,ray,gym,redteam]"  # ray: the --engine ray tests run in make test
    if command -v pyenv >/dev/null; then pyenv rehash || true; fi  # put `testbed` on PATH
    "$PYTHON" "$REPO/scripts/check_python_deps.py" "$REPO" \
        || die "python dependencies still unsatisfied after pip install (see above)"
}

# ---- docker --------------------------------------------------------------------------------
start_dockerd() {
    [ "${TESTBED_SKIP_DOCKER:-0}" = 1 ] && return 0
    "$REPO/scripts/start-dockerd.sh"
}

build_image() {
    [ "${TESTBED_SKIP_DOCKER:-0}" = 1 ] && return 0
    # Offline: no registry is assumed reachable. Fast no-op when the image is current.
    as_root env "PATH=$PATH" "$PYTHON" -m testbed image build --offline --if-missing
}

case "$WHAT" in
    python) install_python ;;
    system) install_system_packages ;;
    docker) start_dockerd; build_image ;;
    all) install_system_packages; install_python; start_dockerd; build_image ;;
    *) die "unknown step '$WHAT' (expected all, python, system or docker)" ;;
esac
say "ok ($WHAT)"
