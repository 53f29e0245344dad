#!/usr/bin/env bash
# Debian packages the tests use as real peers (sshd for git over SSH, gpg for signed commits; htpasswd from
# apache2-utils for the stack's authenticated OCI registry).
# Installs only what is missing; needs root (as on the project's machines and CI).
set -euo pipefail
need=()
command -v /usr/sbin/sshd >/dev/null 2>&1 || need+=(openssh-server)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v git >/dev/null 2>&1 || need+=(git)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
((${#need[@]} == 0)) && exit 0
echo "[setup] apt-get install ${need[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
  echo "[setup] not root: install these yourself: ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package's own service is not wanted: tests start their own sshd on a loopback port.
if [[ " ${need[*]} " == *" openssh-server "* ]] && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now ssh >/dev/null 2>&1 || true
fi
