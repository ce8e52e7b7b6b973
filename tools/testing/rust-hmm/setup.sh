#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what building and booting the rust-hmm test kernel needs.
# Idempotent: when everything is present it only checks, in about a second.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/toolchain.sh"
V=$RUST_HMM_LLVM
PKGS="linux-source-6.12 clang$V lld$V llvm$V libclang$V-dev qemu-system-x86
      busybox-static bc flex bison libelf-dev libssl-dev cpio xz-utils make gcc
      libc6-dev python3 perl rsync python3-sphinx python3-sphinx-rtd-theme"

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
	echo "setup: rustup is missing: install it from https://rustup.rs (or Debian's rustup" \
		"package), then 'rustup default ${RUST_HMM_RUSTC_TESTED##* }'" >&2
	exit 1
fi
# The rustc that rustup runs here: one of the versions the crate is tested with, or say which
# to install (RUST_HMM_ANY_RUSTC=1 tries another anyway).
rustc_version=$(rustc --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
case " $RUST_HMM_RUSTC_TESTED " in
*" $rustc_version "*) ;;
*)
	newest=${RUST_HMM_RUSTC_TESTED##* }
	echo "setup: rustc $rustc_version is not one the kernel crate is tested with" \
		"($RUST_HMM_RUSTC_TESTED): 'rustup toolchain install $newest &&" \
		"rustup default $newest' (or RUST_HMM_ANY_RUSTC=1 to try it)" >&2
	[ "${RUST_HMM_ANY_RUSTC:-0}" = 1 ] || exit 1
	;;
esac
rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
for c in rustfmt clippy; do
	rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
command -v bindgen >/dev/null || cargo install --locked bindgen-cli

# CONFIG_RUST_INLINE_HELPERS links clang's bitcode into rustc's: both must carry the same
# LLVM major version (the kernel checks it too: CONFIG_RUSTC_CLANG_LLVM_COMPATIBLE).
rustc_llvm=$(rustc --version --verbose | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
clang_llvm=$("clang$V" -dumpversion | cut -d. -f1)
if [ "$rustc_llvm" != "$clang_llvm" ]; then
	echo "setup: rustc ($(rustc --version)) carries LLVM $rustc_llvm but clang$V is LLVM $clang_llvm" >&2
	echo "setup: install clang-$rustc_llvm lld-$rustc_llvm llvm-$rustc_llvm libclang-$rustc_llvm-dev" \
		"and set RUST_HMM_LLVM=-$rustc_llvm in tools/testing/rust-hmm/toolchain.sh," \
		"or a rustc whose LLVM is $clang_llvm (rustc --version --verbose)" >&2
	exit 1
fi
exit 0
