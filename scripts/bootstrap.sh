#!/usr/bin/env bash
# Installs what cdrstream needs on a fresh Debian machine, idempotently:
# redis-server, chromium and prometheus (apt, when absent), a .venv with the package and its
# dev extra, and the Apache Kafka jars from Maven Central (into ~/.cache/cdrstream).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {  # apt_install [apt-get options] PACKAGE...
  if [ "$apt_updated" -eq 0 ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: apt-get install ${need_apt[*]}" >&2
  apt_install "${need_apt[@]}"
fi

# Prometheus 2.x and promtool (Debian's `prometheus`). `cdrstream stack up` runs a Prometheus
# of its own (data under the stack dir), so the package's service, which Debian starts on
# :9090 where an init system runs, is stopped and disabled right after installing it; a
# Prometheus that was already installed is left alone. No recommends: they would add
# prometheus-node-exporter, another daemon.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "bootstrap: apt-get install prometheus (its system service is stopped and disabled)" >&2
  apt_install --no-install-recommends prometheus
  if [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  else
    $SUDO service prometheus stop >/dev/null 2>&1 || true
    $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi

PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
.venv/bin/cdrstream stack fetch
