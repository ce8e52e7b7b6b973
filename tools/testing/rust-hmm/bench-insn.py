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
        calls = collections.Counter()
        entries = collections.Counter()
        blocks = cross = 0
        for line in open(path):
            vaddr, insns, count, *rest = line.split()
            addr = int(vaddr, 16)
            i = bisect.bisect_right(addrs, addr) - 1
            name = demangle(syms[i][1]) if i >= 0 else "?"
            per[name] += int(insns) * int(count)
            blocks += int(count)
            if rest:
                entries[name] += int(rest[0])
                cross += int(rest[0])
            # A block at a function's first byte runs once per call (or tail call).
            if i >= 0 and addrs[i] == addr:
                calls[name] += int(count)
        pages, iters, _ = cells[s]
        n = pages * iters
        return ({k: v / n for k, v in per.items()}, {k: v / n for k, v in calls.items()},
                blocks / n, cross / n, {k: v / n for k, v in entries.items()})

    c, c_calls, c_blocks, c_cross, c_entries = load(counts_c, "c")
    r, r_calls, r_blocks, r_cross, r_entries = load(counts_rust, "rust")
    print(f"instructions per page and iteration, {cells['c'][2]} pages "
          f"(iterations: C {cells['c'][1]}, Rust {cells['rust'][1]})")
    print(f"total: C {sum(c.values()):.0f}  Rust {sum(r.values()):.0f}; translation blocks "
          f"run: C {c_blocks:.0f}  Rust {r_blocks:.0f}; function calls: "
          f"C {sum(c_calls.values()):.1f}  Rust {sum(r_calls.values()):.1f}")
    # QEMU chains a block directly to the next only on the page where it starts: an entry
    # from another page is a lookup, as a return is.
    print(f"entries of a block from another page: C {c_cross:.1f}  Rust {r_cross:.1f}; "
          "the largest differences, by function entered:")
    print_largest(c_entries, r_entries, rows // 4)
    # Under TCG a call, and above all its return (an indirect jump: a lookup of the next
    # block), costs more than the instructions say.
    print("calls per page and iteration, the largest differences:")
    print_largest(c_calls, r_calls, rows // 2)
    print_pages(counts_c, counts_rust)
    print("instructions per page and iteration, the largest differences:")
    print(f"{'Rust-C':>9} {'C':>9} {'Rust':>9}  function")
    diff = sorted(set(c) | set(r), key=lambda k: -abs(r.get(k, 0) - c.get(k, 0)))
    for k in diff[:rows]:
        print(f"{r.get(k, 0) - c.get(k, 0):9.1f} {c.get(k, 0):9.1f} {r.get(k, 0):9.1f}  {k}")


def print_largest(c, r, rows):
    """The rows keys whose values differ most between c and r (at least 0.05 apart)."""
    keys = sorted(set(c) | set(r), key=lambda k: -abs(r.get(k, 0) - c.get(k, 0)))
    for k in keys[:rows]:
        d = r.get(k, 0) - c.get(k, 0)
        if abs(d) >= 0.05:
            print(f"{d:9.2f} {c.get(k, 0):9.2f} {r.get(k, 0):9.2f}  {k}")


def region(addr):
    """The part of the x86-64 address space (4-level paging, no KASLR) that holds addr."""
    for base, name in ((0xffffffffa0000000, "modules"), (0xffffffff80000000, "kernel image"),
                       (0xfffffe0000000000, "cpu entry, fixmap"), (0xffffea0000000000, "vmemmap"),
                       (0xffffc90000000000, "vmalloc (stacks, vmalloc)"),
                       (0xffff888000000000, "direct map"), (0x0000800000000000, "?")):
        if addr >= base:
            return name
    return "user"


def pages(path):
    """A .pages dump: the distinct pages per operation, by kind and region."""
    per = collections.Counter()
    ops = 0
    for line in open(path):
        f = line.split()
        if f[0] == "ops":
            ops = int(f[1])
        else:
            per[(f[0], region(int(f[1], 16)))] += int(f[2])
    return {k: v / max(ops, 1) for k, v in per.items()}


def print_pages(counts_c, counts_rust):
    try:
        c, r = pages(counts_c + ".pages"), pages(counts_rust + ".pages")
    except OSError:
        return
    print("distinct pages touched per operation (after each operation's munmap QEMU's software "
          "TLB and block lookup cache start empty):")
    print(f"{'C':>9} {'Rust':>9}  kind, region")
    for kind in ("code", "data"):
        keys = sorted(k for k in set(c) | set(r) if k[0] == kind)
        for k in keys:
            print(f"{c.get(k, 0):9.1f} {r.get(k, 0):9.1f}  {k[0]}, {k[1]}")
        tc = sum(v for k, v in c.items() if k[0] == kind)
        tr = sum(v for k, v in r.items() if k[0] == kind)
        if keys:
            print(f"{tc:9.1f} {tr:9.1f}  {kind}, total")


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
