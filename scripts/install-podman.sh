#!/usr/bin/env bash
# A container engine for building and testing Dockerfile.postgres where no Docker daemon and no registry
# are at hand (tests/image): podman with runc, and a Debian base image made locally with debootstrap.
# Idempotent; prints the base image's name on stdout (last line).
#   usage: install-podman.sh [SUITE]        (default: bookworm)
source "$(dirname "$0")/lib.sh"

suite="${1:-bookworm}"
base="localhost/debian:$suite"
export DEBIAN_FRONTEND=noninteractive

missing=()
for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if as_root podman image exists "$base"; then
    info "base image $base already built"
else
    # No registry is reachable: the official image's contents, made from Debian's archive (about 1 minute).
    step "base image $base (debootstrap --variant=minbase $suite)"
    root=$(mktemp -d)
    trap 'as_root rm -rf "$root"' EXIT
    as_root debootstrap --variant=minbase "$suite" "$root/rootfs" http://deb.debian.org/debian >/dev/null
    as_root tar -C "$root/rootfs" -c . | as_root podman import - "$base" >/dev/null
fi
echo "$base"
