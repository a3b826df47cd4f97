#!/usr/bin/env bash
# Installs the Debian packages the tests use as real clients and servers, when missing.
set -euo pipefail
needed=(openssh-client openssh-server sshpass curl lftp swaks chromium postgresql redis-server dovecot-imapd
        haproxy systemd libnet-ssleay-perl libio-socket-ssl-perl)
missing=()
for pkg in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
