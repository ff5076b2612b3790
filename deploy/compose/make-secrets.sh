#!/usr/bin/env bash
# Creates the compose stack's secrets once: the mesh key (service tokens) and the credentials
# master key (base64 of 32 random bytes). Existing files are kept: replacing the master key
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
