#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turns the samples of a benchmark boot (bench-init.sh, dmirror-bench.c) into BENCHMARK.md.

Per cell (operation, minor, size): the median, min and max MB/s of each series over the
counted repetitions (repetition 0 warms up), the Rust/C ratio of the medians and the noise of
the method, C2/C: the same C module measured as a second series alternating with the first.

A cell is "behind" when Rust/C is below 1 and Rust's samples are slower than C's beyond what
the noise explains: a one-sided Mann-Whitney U test, exact, of the Rust samples against the
samples of C and C2 together (one module, two series: what the method measures when nothing
differs) gives p < 0.01. The ratio rule of the first tables (Rust/C below 1 by more than this
cell's |C2/C - 1| or the median of that over all cells) judged by one draw of the noise per
cell; the table says how often it calls cells behind when every series is drawn from C's own
samples (a bootstrap), and what it says of this run.

Exits 1 without writing the table when the boot failed, a sample is missing, a series
reported a failure or the clock left the TSC.

With --policy-boot (icount or wall: the boot that ran it), the file ends with the section
"### Migration policy" of bench-policy.py, the GPU-like sample driver naive against its
policy; the file is not written if that section cannot be (a wrong byte, a failed command).
"""

import argparse
import datetime
import importlib.util
import itertools
import math
import os
import platform
import random
import re
import statistics
import subprocess
import sys

PAGE = 4096
OPS = [
    ("read", "READ (hmm_range_fault + copy)"),
    ("write", "WRITE (hmm_range_fault + copy)"),
    ("migrate_to_dev", "MIGRATE_TO_DEV"),
    ("fault_back", "CPU read (private: fault, migrate back)"),
    ("migrate_to_sys", "MIGRATE_TO_SYS"),
    ("exclusive", "EXCLUSIVE"),
    ("snapshot", "SNAPSHOT"),
]
KINDS = [("private", "device-private (/dev/hmm_dmirror0)"),
         ("coherent", "device-coherent (/dev/hmm_dmirror2)")]
SIZES = [1, 64, 512, 16384]
SERIES = ["c", "rust", "c2"]
# The level of the test: the chance that a cell where nothing differs is called behind.
ALPHA = 0.01
CONSOLE_BAD = re.compile(r"BUG:|Oops|WARNING:|Call Trace|Kernel panic|general protection")


def size_name(pages):
    return "64 MiB" if pages == 16384 else f"{pages} page{'s' if pages > 1 else ''}"


def host_cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def parse(log):
    samples = {}  # (series, op, kind, pages) -> [MB/s per repetition]
    info = {"fail": []}
    done = False
    for line in log.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "BENCH" and len(f) == 8:
            series, rep, op, kind = f[1], int(f[2]), f[3], f[4]
            pages, iters, ns = int(f[5]), int(f[6]), int(f[7])
            if rep == 0 or ns == 0:
                continue
            mbps = pages * PAGE * iters / ns * 1e3
            samples.setdefault((series, op, kind, pages), []).append((mbps, iters))
        elif line.startswith("@@@ BENCH-BOOT"):
            info["boot"] = line.split(" ", 2)[2]
        elif line.startswith("@@@ BENCH-CPU"):
            info["guest_cpu"] = line.split(" ", 2)[2] if len(f) > 2 else "unknown"
        elif line.startswith("@@@ BENCH-FAIL"):
            info["fail"].append(line.split(" ", 2)[2] if len(f) > 2 else "?")
        elif line.startswith("@@@ BENCH-DONE"):
            done = True
    return samples, info, done


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def cell_text(vals):
    mbps = [v for v, _ in vals]
    return f"{fmt(statistics.median(mbps))} ({fmt(min(mbps))}–{fmt(max(mbps))})"


# Up to this many ways of drawing the candidate's samples (C(15, 5) = 3003 with the default 5
# repetitions), the test counts them all; beyond it (RUST_HMM_BENCH_REPS=8 gives C(24, 8),
# 735471), it draws this many at random, with a fixed seed.
EXACT_DRAWS = 20000


def slower_p(cand, ref):
    """The one-sided p-value that `cand` is slower (lower MB/s) than `ref` only by chance:
    the Mann-Whitney U test over the ways of drawing len(cand) of the pooled samples (ties
    count half), exact up to EXACT_DRAWS ways, a permutation estimate beyond."""
    pooled = cand + ref
    n = len(cand)

    def u(pick):
        chosen = set(pick)
        xs = [pooled[i] for i in pick]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        return sum((x < y) + 0.5 * (x == y) for x in xs for y in ys)

    observed = u(range(n))
    if math.comb(len(pooled), n) <= EXACT_DRAWS:
        picks = list(itertools.combinations(range(len(pooled)), n))
        return sum(u(pick) >= observed for pick in picks) / len(picks)
    rng = random.Random(1)
    hits = sum(u(rng.sample(range(len(pooled)), n)) >= observed for _ in range(EXACT_DRAWS))
    # The observed draw counts as one of them: never 0.
    return (hits + 1) / (EXACT_DRAWS + 1)


def ratio_rule(c, r, c2, noise_all):
    """The first tables' rule: behind when Rust/C is below 1 by more than this cell's
    |C2/C - 1| or `noise_all`, whichever is larger."""
    med = statistics.median
    return med(r) / med(c) < 1 - max(abs(med(c2) / med(c) - 1), noise_all)


def ratio_rule_null(samples, cells, trials=200):
    """How many cells the ratio rule calls behind, on average, when C, Rust and C2 are all
    drawn (with replacement) from the cell's own C and C2 samples: nothing differs."""
    rng = random.Random(1)
    med = statistics.median
    flagged = 0
    for _ in range(trials):
        draws = []
        for cell in cells:
            pool = [v for v, _ in samples[("c",) + cell] + samples[("c2",) + cell]]
            n = len(samples[("c",) + cell])
            draws.append([rng.choices(pool, k=n) for _ in range(3)])
        noise_all = med(abs(med(c2) / med(c) - 1) for c, _, c2 in draws)
        flagged += sum(ratio_rule(c, r, c2, noise_all) for c, r, c2 in draws)
    return flagged / trials


def section(log_path, console_path, icount):
    """The tables of one boot, or None (after saying why) if it cannot be trusted."""
    with open(log_path, errors="replace") as fh:
        samples, info, done = parse(fh.read())
    problems = [f"a series failed: {f}" for f in info["fail"]]
    if not done:
        problems.append("the boot did not finish (no BENCH-DONE)")
    try:
        with open(console_path, errors="replace") as fh:
            bad = [line.strip() for line in fh if CONSOLE_BAD.search(line)]
        if bad:
            problems.append(f"kernel report on the console: {bad[0]}")
    except OSError as e:
        problems.append(f"no console log: {e}")
    if not re.search(r"clocksource=tsc( |$)", info.get("boot", "")):
        problems.append(f"the guest clock is not the TSC: {info.get('boot', 'no boot line')}")

    cells = [(op, kind, pages) for kind, _ in KINDS for op, _ in OPS for pages in SIZES]
    reps = set()
    for series in SERIES:
        for op, kind, pages in cells:
            vals = samples.get((series, op, kind, pages))
            if not vals:
                problems.append(f"no sample for {series} {op} {kind} {pages}")
            else:
                reps.add(len(vals))
    for pages in SIZES:
        if not samples.get(("rust-fa", "fault_back", "private", pages)):
            problems.append(f"no sample for rust-fa fault_back private {pages}")
    for pages in SIZES:
        if not samples.get(("memcpy", "memcpy", "cpu", pages)):
            problems.append(f"no memcpy sample for {pages} pages")
    if problems:
        for p in problems[:20]:
            print(f"bench: {log_path}: {p}", file=sys.stderr)
        return None

    med = {k: statistics.median(v for v, _ in vals) for k, vals in samples.items()}
    noise_all = statistics.median(
        abs(med[("c2",) + c] / med[("c",) + c] - 1) for c in cells)

    def mbps(series, cell):
        return [v for v, _ in samples[(series,) + cell]]

    rows = []
    behind = []
    ratio_behind = 0
    c2_behind = 0
    for kind, kind_title in KINDS:
        rows.append(f"\n#### {kind_title}\n")
        rows.append("| operation | size | C MB/s median (min–max) | Rust MB/s median (min–max) "
                    "| Rust/C | noise C2/C | p (Rust slower) | |")
        rows.append("|---|---|---|---|---|---|---|---|")
        for op, title in OPS:
            for pages in SIZES:
                c, r, c2 = (("c", op, kind, pages), ("rust", op, kind, pages),
                            ("c2", op, kind, pages))
                cell = (op, kind, pages)
                ratio = med[r] / med[c]
                noise = med[c2] / med[c]
                ref = mbps("c", cell) + mbps("c2", cell)
                p = slower_p(mbps("rust", cell), ref)
                ratio_behind += ratio_rule(mbps("c", cell), mbps("rust", cell),
                                           mbps("c2", cell), noise_all)
                # The method against itself: are C and C2 apart beyond chance, either way?
                c2_behind += (slower_p(mbps("c2", cell), mbps("c", cell)) < ALPHA
                              or slower_p(mbps("c", cell), mbps("c2", cell)) < ALPHA)
                if ratio >= 1:
                    verdict = "≥ C"
                elif p >= ALPHA:
                    verdict = "within noise"
                else:
                    verdict = "**behind**"
                    behind.append(f"{title} {kind} {size_name(pages)} ({ratio:.2f})")
                rows.append(f"| {title} | {size_name(pages)} | {cell_text(samples[c])} "
                            f"| {cell_text(samples[r])} | {ratio:.2f} | {noise:.2f} "
                            f"| {p:.3f} | {verdict} |")
    rows.append("\n#### CPU fault, migrate back, with the Rust device's fault-around\n")
    rows.append("`test_hmm_rust fault_around_order=4`: a CPU fault on a device-private page "
                "migrates back the aligned 16 pages (64 KiB) around it with one migration "
                "(`PagemapOps::fault_around_order`); C and the default Rust device move the "
                "faulting page alone. Device-private minor; device-coherent pages do not fault "
                "(the CPU maps them).\n")
    rows.append("| size | C MB/s median (min–max) | Rust, fault-around, MB/s median "
                "(min–max) | Rust FA/C |")
    rows.append("|---|---|---|---|")
    for pages in SIZES:
        c, fa = ("c", "fault_back", "private", pages), ("rust-fa", "fault_back", "private", pages)
        rows.append(f"| {size_name(pages)} | {cell_text(samples[c])} "
                    f"| {cell_text(samples[fa])} | {med[fa] / med[c]:.2f} |")
    rows.append("\n#### memcpy in the same VM (the physical reference)\n")
    rows.append("| size | MB/s median (min–max) |")
    rows.append("|---|---|")
    for pages in SIZES:
        rows.append(f"| {size_name(pages)} | {cell_text(samples[('memcpy', 'memcpy', 'cpu', pages)])} |")
    iters = [i for vals in samples.values() for _, i in vals]
    unit = "10^9 guest instructions" if icount else "second"
    summary = [
        f"Cells behind C: {len(behind)} of {len(cells)}" + (": " + "; ".join(behind) if behind
                                                          else "."),
        "",
        f"MB/s = 10^6 bytes of the range per {unit}. The median of |C2/C - 1| over the cells: "
        f"{noise_all:.3f}; the test finds C and C2 apart in {c2_behind} of {len(cells)} cells. "
        f"Repetitions: {min(reps)} counted per cell after one warm-up; a sample repeats the "
        f"operation until its timed part reaches 50 ms ({min(iters)} to {max(iters)} "
        "operations). The ratio rule of the first tables calls "
        f"{ratio_behind} cells behind here (where nothing differs it calls "
        f"{ratio_rule_null(samples, cells):.1f} on average).",
    ]
    return {"rows": rows, "summary": summary, "behind": behind, "cells": cells, "info": info}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True, help="the instruction-counted boot's samples")
    ap.add_argument("--console", required=True)
    ap.add_argument("--wall-log", help="the wall-clock boot's samples")
    ap.add_argument("--wall-console")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--qemu", default="qemu")
    ap.add_argument("--policy-boot", choices=["icount", "wall"],
                    help="the boot that ran the migration-policy part (bench-policy.py)")
    args = ap.parse_args()

    icount = section(args.log, args.console, True)
    wall = section(args.wall_log, args.wall_console, False) if args.wall_log else None
    policy = None
    if args.policy_boot:
        spec = importlib.util.spec_from_file_location(
            "bench_policy", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                         "bench-policy.py"))
        bench_policy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench_policy)
        log, console = ((args.log, args.console) if args.policy_boot == "icount"
                        else (args.wall_log, args.wall_console))
        policy = bench_policy.section(log, console, args.policy_boot, args.qemu)
    if icount is None or (args.wall_log and wall is None) or (args.policy_boot and not policy):
        print("bench: FAILED, table not written", file=sys.stderr)
        return 1
    info = icount["info"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# rust-hmm benchmark: the Rust device against the C test_hmm",
        "",
        "Generated by `make bench` (tools/testing/rust-hmm/bench.sh); do not edit by hand.",
        "",
        f"- Date: {now}",
        f"- Host: {host_cpu()}, {os.cpu_count()} cores; {args.qemu}, TCG, `-cpu max -smp 2 -m 6G`",
        f"- Guest: {info.get('boot', '?')}; CPU model {info.get('guest_cpu', '?')}",
        "- Kernel: non-debug build of this tree (kernel/configs/rust_hmm.config + "
        "rust_hmm_bench.config, -O2), booted with `tsc=reliable`",
        "- The series C, Rust and C2 (C again: the noise) alternate with one module load per "
        "operation and minor, in an order that rotates from one load to the next; only the "
        "operation is timed, on fresh memory filled by the CPU; the data it moved is checked",
        f"- Both boots with the benchmark: {args.seconds} s",
        "",
        "A cell is **behind** when Rust/C is below 1 and the Rust samples are slower than the "
        "samples of C and C2 together beyond chance: p, the one-sided exact Mann-Whitney U "
        f"test's, below {ALPHA}.",
        "",
        "## Instruction-counted (the headline)",
        "",
        "QEMU counts instructions (`-icount shift=0,sleep=off`, one vCPU thread): the guest's "
        "clock advances one nanosecond per instruction it runs, so a cell measures the guest's "
        "work, not the emulator's cost of a call, a return or a TLB refill, nor the host's "
        "noise (C2/C is 1.00). MB/s here is bytes per 10^9 guest instructions: what counts on "
        "hardware, where those costs are small.",
        "",
    ] + icount["summary"]
    out = head + icount["rows"]
    if wall:
        out += [
            "",
            "## Wall clock",
            "",
            "The same boot without instruction counting (multi-threaded TCG): time as the "
            "emulator spends it, calls and TLB refills included, and the host's noise.",
            "",
        ] + wall["summary"] + wall["rows"]
    if policy:
        out += [""] + policy
    with open(args.out, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print(f"bench: table written to {args.out}; {len(icount['behind'])} of "
          f"{len(icount['cells'])} cells behind C (instruction-counted)"
          + (f", {len(wall['behind'])} (wall clock)" if wall else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
