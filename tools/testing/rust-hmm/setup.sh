#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and booting the rust-hmm test kernel needs.
# Idempotent: when everything is present it only checks, in about a second.
set -euo pipefail

PKGS="linux-source-6.12 clang-16 lld-16 llvm-16 libclang-16-dev qemu-system-x86
      busybox-static bc flex bison libelf-dev libssl-dev cpio xz-utils make gcc
      libc6-dev python3 perl rsync"

missing=()
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v rustup >/dev/null; then
	echo "setup: rustup is missing; install it from your distribution or rustup.rs" >&2
	exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
for c in rustfmt clippy; do
	rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
command -v bindgen >/dev/null || cargo install --locked bindgen-cli
exit 0
