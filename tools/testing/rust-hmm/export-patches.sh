#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Maintainers' tool: patches/ is kept as a queue of commits in a git tree of the kernel
# source. `export-patches.sh TREE BASE` writes TREE's commits after BASE to patches/,
# numbered; `export-patches.sh --import TREE` applies patches/ to a fresh git tree of the
# pristine source (git am), to edit them there.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
if [ "${1:-}" = --import ]; then
	git -C "$2" am "$REPO"/patches/*.patch
	exit 0
fi
tree=$1
base=$2
tmp=$(mktemp -d)
git -C "$tree" format-patch -q -N --no-signature --zero-commit -o "$tmp" "$base"..HEAD
rm -f "$REPO"/patches/*.patch
mv "$tmp"/*.patch "$REPO/patches/"
rmdir "$tmp"
for p in "$REPO"/patches/*.patch; do
	"$tree/scripts/checkpatch.pl" --no-tree -q - <"$p" || echo "export-patches: checkpatch complains about $p" >&2
done
ls "$REPO/patches"
