#!/usr/bin/env bash
# Creates the compose stack's secrets once: the mesh key (service tokens), the credentials
# master key (base64 of 32 random bytes), and each connector's Ed25519 identity key (base64
# PKCS#8, as `plugboard keys connector` makes them) with the public halves for credentials. Existing files are kept: replacing the master key
# makes every stored credential unreadable (rotation is TODO(#4)).
set -euo pipefail
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
chmod 700 secrets
for name in mesh.key master.key; do
  if [ -s "secrets/$name" ]; then
    echo "secrets/$name exists, kept"
    continue
  fi
  case "$name" in
    mesh.key) head -c 48 /dev/urandom | base64 -w0 >"secrets/$name" ;;
    master.key) head -c 32 /dev/urandom | base64 -w0 >"secrets/$name" ;;
  esac
  # The containers run as uid 10001 and read the file through a bind mount; the folder above
  # (mode 700) keeps other users of this machine out.
  chmod 644 "secrets/$name"
  echo "secrets/$name created"
done

# The connectors of compose.yaml. The public keys file is derived from the private keys every
# time, so it always matches them.
: >secrets/connector-public-keys
for connector in bullhorn greenhouse; do
  key="secrets/connector-$connector.key"
  if [ ! -s "$key" ]; then
    openssl genpkey -algorithm ed25519 -outform DER | base64 -w0 >"$key"
    chmod 644 "$key"
    echo "$key created"
  fi
  public=$(base64 -d "$key" | openssl pkey -inform DER -pubout -outform DER | tail -c 32 | base64 -w0)
  echo "$connector=$public" >>secrets/connector-public-keys
done
chmod 644 secrets/connector-public-keys
echo "secrets/connector-public-keys written"
