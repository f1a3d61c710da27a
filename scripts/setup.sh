#!/usr/bin/env bash
# Installs the system packages that building and testing Portcullis need, only
# when they are missing. Safe to run again. Needs root (or sudo) for apt-get.
set -euo pipefail

packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }
need cc gcc
need pkg-config pkg-config
need curl curl
need protoc protobuf-compiler   # etcd-client's build
need etcd etcd-server           # the etcd store's end-to-end tests
need etcdctl etcd-client        # the TLS + auth etcd test (user, role, auth enable)
need ip iproute2                # the network-partition test
need chromium chromium          # the dashboard's browser test
need chromedriver chromium-driver
need python3 python3            # bench/'s unit tests
need openssl openssl            # bench/'s steady-jwt token test
need /usr/sbin/slapd slapd     # Basic authentication against a real OpenLDAP
need ldapsearch ldap-utils      # (tests/proxy/auth_basic.rs, testkit ldap.rs)

if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${packages[*]}"
  # Keep package scripts from starting system services: slapd would listen on
  # every address (port 389), etcd on 2379. The tests start their own, on
  # loopback. The usual policy-rc.d guard, only when the machine has none,
  # removed afterwards.
  guard=/usr/sbin/policy-rc.d
  if [ ! -e "$guard" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
    $sudo chmod 755 "$guard"
    trap '$sudo rm -f "$guard"' EXIT
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
fi
