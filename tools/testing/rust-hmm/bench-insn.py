#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""RUST_HMM_BENCH_PROFILE=insn: compare the instructions per page of each function between
the C module's window and the Rust module's (qemu-insn-plugin.c's counts, bench-init.sh's
log). The windows hold one dmirror-bench run each, setup included (filling memory, the
untimed steps): the table is per iteration and per page of the cell, which the log names.

Usage: bench-insn.py SYSTEM.MAP BENCH.LOG COUNTS.C COUNTS.RUST [ROWS]
"""
import bisect
import collections
import re
import sys


def main():
    smap, log, counts_c, counts_rust = sys.argv[1:5]
    rows = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    kernel = []
    for line in open(smap):
        fields = line.split()
        if len(fields) >= 3 and fields[1] in "tTwW":
            kernel.append((int(fields[0], 16), fields[2]))
    modules = collections.defaultdict(list)
    cells = {}
    series = None
    for line in open(log):
        m = re.match(r"@@@ INSN (\S+)", line)
        if m:
            series = m.group(1)
            continue
        m = re.match(r"([0-9a-f]{16}) [tT] (\S+)\s+\[(\w+)\]", line)
        if m and series:
            modules[series].append((int(m.group(1), 16), f"{m.group(2)} [{m.group(3)}]"))
        f = line.split()
        if len(f) == 8 and f[0] == "BENCH" and f[2] == "1":
            cells[f[1]] = (int(f[5]), int(f[6]), " ".join(f[3:6]))
    if set(cells) != {"c", "rust"}:
        sys.exit("bench-insn: the log has no run of each module (one cell, one minor)")

    def load(path, s):
        syms = sorted(kernel + modules[s])
        addrs = [a for a, _ in syms]
        per = collections.Counter()
        for line in open(path):
            vaddr, insns, count = line.split()
            i = bisect.bisect_right(addrs, int(vaddr, 16)) - 1
            name = syms[i][1] if i >= 0 else "?"
            per[demangle(name)] += int(insns) * int(count)
        pages, iters, _ = cells[s]
        return {k: v / pages / iters for k, v in per.items()}

    c = load(counts_c, "c")
    r = load(counts_rust, "rust")
    print(f"instructions per page and iteration, {cells['c'][2]} pages "
          f"(iterations: C {cells['c'][1]}, Rust {cells['rust'][1]})")
    print(f"total: C {sum(c.values()):.0f}  Rust {sum(r.values()):.0f}")
    print(f"{'Rust-C':>9} {'C':>9} {'Rust':>9}  function")
    diff = sorted(set(c) | set(r), key=lambda k: -abs(r.get(k, 0) - c.get(k, 0)))
    for k in diff[:rows]:
        print(f"{r.get(k, 0) - c.get(k, 0):9.1f} {c.get(k, 0):9.1f} {r.get(k, 0):9.1f}  {k}")


def demangle(name):
    """A readable form of a v0-mangled Rust symbol: its last identifiers (crate hashes and
    back references skipped, generic arguments flattened)."""
    if not name.startswith("_R"):
        return name
    idents = []
    i = 2
    while i < len(name):
        ch = name[i]
        if ch in "sB":
            # A disambiguator or a back reference: base-62 digits up to '_'.
            end = name.find("_", i)
            i = len(name) if end < 0 else end + 1
        elif ch.isdigit():
            j = i
            while j < len(name) and name[j].isdigit():
                j += 1
            n = int(name[i:j])
            if j < len(name) and name[j] == "_":
                j += 1
            idents.append(name[j:j + n])
            i = j + n
        else:
            i += 1
    return "::".join(idents[-4:]) + " (Rust)"


if __name__ == "__main__":
    main()
