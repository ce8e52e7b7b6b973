#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The "### Migration policy" section of BENCHMARK.md: the GPU-like sample driver
(samples/rust/rust_hmm_gpu) loaded naive and with its default policy, from the "GPU ..."
lines gpu-bench.c prints in a benchmark boot (bench-init.sh, rust_hmm.bench_gpu=MB).

bench-table.py calls section() for the whole file (make bench); run as a script
(RUST_HMM_BENCH_SECTION=policy make bench) it puts the section into an existing file: in
place of its "### Migration policy" section (up to the next heading of level 1 to 3), or at
its end, leaving the rest as it was.

Exits 1 without writing anything when the part failed (a wrong byte, a failed command: a
"@@@ GPU-FAIL" line), did not finish, a sample is missing, the kernel reported a problem on
the console or the clock was not the TSC.
"""

import argparse
import datetime
import re
import statistics
import sys

TITLE = "### Migration policy"
PAGE = 4096
MIB = 1 << 20
MODES = ["naive", "policy"]
WORKLOADS = ["streaming", "random", "ping-pong", "atomics", "oversubscribed"]
# The goals: policy/naive at least this.
GOALS = [("streaming", 3), ("ping-pong", 5), ("oversubscribed", 2)]
# The size of the benchmark (RUST_HMM_BENCH_POLICY_MB): another one is a smoke run.
FULL_MB = 64
CONSOLE_BAD = re.compile(r"BUG:|Oops|WARNING:|Call Trace|Kernel panic|general protection")
# What the naive mode's parameters mean (rust_hmm_gpu.rs).
NAIVE_MEANS = {
    "fault_around_order=0": "a device fault migrates its page alone",
    "cpu_fault_around_order=0": "a CPU fault brings back its page alone",
    "evict_order=0": "eviction moves one page at a time",
    "thrash_threshold=0": "no thrashing detection: nothing is pinned",
    "migrate_atomics=0": "atomics through exclusive access page by page",
    "read_in_place=0": "a device read migrates even a block that came back from the device",
    "huge_map=0": "no huge mapping in place",
}
COUNTERS = ["faults", "batches", "duplicates", "pages_to_device", "pages_to_ram", "evictions",
            "evicted_pages", "pins", "remote_maps", "exclusive", "copy_jobs", "device_pages"]


def parse(text):
    """The samples of counted repetitions, {(mode, workload): [dict]}, the memcpy samples,
    and what the markers say."""
    samples, memcpy = {}, []
    info = {"fail": [], "params": {}, "done": False}
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "GPU":
            d = dict(kv.split("=", 1) for kv in f[1:] if "=" in kv)
            for k, v in d.items():
                if k not in ("mode", "workload"):
                    d[k] = int(v)
            if d.get("rep", 0) == 0 or not d.get("ns"):
                continue
            if d["mode"] == "memcpy":
                memcpy.append(d)
            else:
                samples.setdefault((d["mode"], d["workload"]), []).append(d)
        elif line.startswith("@@@ GPU-FAIL"):
            info["fail"].append(line.split(" ", 2)[2] if len(f) > 2 else "?")
        elif line.startswith("@@@ GPU-BEGIN"):
            kv = dict(x.split("=", 1) for x in f[2:] if "=" in x)
            info["begin"] = float(kv.get("uptime", 0))
            info["mb"] = int(kv.get("mb", 0))
            info["vram_mb"] = int(kv.get("vram_mb", 0))
        elif line.startswith("@@@ GPU-END"):
            info["end"] = float(line.split("uptime=", 1)[1].split()[0])
        elif line.startswith("@@@ GPU-PARAMS"):
            m = re.match(r"@@@ GPU-PARAMS (\S+) given: (.*); loaded:(.*)$", line)
            if m:
                given = dict(x.split("=", 1) for x in m.group(2).split())
                loaded = dict(x.split("=", 1) for x in m.group(3).split())
                info["params"][m.group(1)] = (given, loaded)
        elif line.startswith("@@@ BENCH-BOOT"):
            info["boot"] = line.split(" ", 2)[2]
        elif line.startswith("@@@ BENCH-DONE"):
            info["done"] = True
    return samples, memcpy, info


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def ratio(v):
    """A plain number: 0.012, 3.42, 12.3, 140."""
    if v < 0.1:
        return f"{v:.3f}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def spread(vals):
    return f"{fmt(statistics.median(vals))} ({fmt(min(vals))}–{fmt(max(vals))})"


def size_text(nbytes):
    if nbytes % MIB == 0:
        return f"{nbytes // MIB} MiB"
    return f"{nbytes // 1024} KiB"


def mbps(d):
    return d["bytes"] / d["ns"] * 1e3


def section(log_path, console_path, clock, qemu=None, seconds=None):
    """The section's lines, or None (after saying why on stderr)."""
    with open(log_path, errors="replace") as fh:
        samples, memcpy, info = parse(fh.read())
    problems = [f"the policy part failed: {f}" for f in info["fail"]]
    if "begin" not in info:
        problems.append("the boot did not run the policy part (no GPU-BEGIN)")
    elif "end" not in info:
        problems.append("the policy part did not finish (no GPU-END)")
    if not info["done"]:
        problems.append("the boot did not finish (no BENCH-DONE)")
    kernel_lines = []
    try:
        with open(console_path, errors="replace") as fh:
            console = fh.read().splitlines()
        bad = [line.strip() for line in console if CONSOLE_BAD.search(line)]
        if bad:
            problems.append(f"kernel report on the console: {bad[0]}")
        # What the module said, but for its "2 devices, N MiB of device memory each".
        for line in console:
            if "rust_hmm_gpu" in line and "MiB of device memory each" not in line:
                text = re.sub(r"^\[[ 0-9.]*\] ", "", line.strip())
                if text not in kernel_lines:
                    kernel_lines.append(text)
    except OSError as e:
        problems.append(f"no console log: {e}")
    if not re.search(r"clocksource=tsc( |$)", info.get("boot", "")):
        problems.append(f"the guest clock is not the TSC: {info.get('boot', 'no boot line')}")
    reps = set()
    for mode in MODES:
        for w in WORKLOADS:
            vals = samples.get((mode, w))
            if not vals:
                problems.append(f"no sample for {mode} {w}")
            else:
                reps.add(len(vals))
    if not memcpy:
        problems.append("no memcpy sample")
    if len(reps) > 1:
        problems.append(f"the workloads have different numbers of samples: {sorted(reps)}")
    if problems:
        for p in problems[:20]:
            print(f"bench-policy: {log_path}: {p}", file=sys.stderr)
        return None
    for line in kernel_lines[:10]:
        print(f"bench-policy: the module said: {line}", file=sys.stderr)

    med = statistics.median
    nreps = reps.pop()
    first = {w: samples[("policy", w)][0] for w in WORKLOADS}
    mb, vram = info["mb"], info["vram_mb"]
    unit = "10^9 guest instructions" if clock == "icount" else "second"
    copy_mbps = [mbps(d) for d in memcpy]

    def sz(w):
        return size_text(first[w]["size"])

    def touched(w):
        return size_text(first[w]["bytes"]) if first[w]["bytes"] >= MIB else \
            f"{first[w]['bytes'] // 1024} KiB"

    # The parameters as the module took them (sysfs), and those it did not.
    given, loaded = info["params"].get("naive", ({}, {}))
    _, defaults = info["params"].get("policy", ({}, {}))
    naive_args = " ".join(f"{k}={v}" for k, v in given.items() if k != "vram_mb")
    ignored = [f"`{k}={v}`" for k, v in given.items() if k not in loaded]
    differ = [f"`{k}={v}` (loaded as {loaded[k]})" for k, v in given.items()
              if k in loaded and loaded[k] != v]
    naive_means = [NAIVE_MEANS[f"{k}={v}"] for k, v in given.items()
                   if f"{k}={v}" in NAIVE_MEANS]
    policy_args = " ".join(f"{k}={v}" for k, v in defaults.items() if k != "vram_mb")
    ppr = first["ping-pong"]["rounds"]
    atr = first["atomics"]["rounds"]
    osp = first["oversubscribed"]["rounds"]
    nwords = first["atomics"]["size"] // 256

    lines = [TITLE, ""]
    if mb != FULL_MB:
        lines += [f"**Smoke run** (`RUST_HMM_BENCH_POLICY_MB={mb}`): reduced sizes, not the "
                  "benchmark.", ""]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines += [
        "The GPU-like sample driver (`samples/rust/rust_hmm_gpu`, `rust_hmm_gpu.ko`) on "
        f"`/dev/rust_hmm_gpu0` with {vram} MiB of device memory (`vram_mb={vram}`) in both "
        f"modes: **naive**, the module loaded with `{naive_args}`"
        + (f" ({', '.join(naive_means)})" if naive_means else "")
        + ", against **policy**, its defaults"
        + (f" (`{policy_args}`)" if policy_args else "") + ". "
        + (f"The module has no parameter {', '.join(ignored)}: the kernel ignored it "
           "(`unknown parameter ... ignored`). " if ignored else "")
        + (f"Loaded otherwise than given: {', '.join(differ)}. " if differ else "")
        + f"`gpu-bench` (tools/testing/rust-hmm/gpu-bench.c) runs each workload in a process "
        "of its own, on private anonymous memory (a 2 MiB-aligned VMA of its own, filled by "
        "the CPU untimed):",
        "",
        f"- **streaming**: the CPU has written a pattern over {sz('streaming')}; one device pass "
        "(`STREAM`, stride 1) reads every byte, then the CPU reads it all back, comparing it "
        f"with a copy. {touched('streaming')} touched.",
        f"- **random**: the same {sz('random')} and bytes, but the device visits the pages in a "
        "seeded random order, the same in every run: one `STREAM` per page (len 4096, stride 1), "
        f"4096 commands per `SUBMIT`, all submitted, then waited; then the CPU reads it all "
        f"back. {touched('random')} touched.",
        f"- **ping-pong**: {ppr} rounds over the same {sz('ping-pong')}: the device reads the "
        "CPU's last byte back (`STREAM`: its sum checks it) and writes a round's byte (`FILL`), "
        "then the CPU checks every byte and writes another (`memset`). "
        f"{touched('ping-pong')} touched.",
        f"- **atomics**: {atr} rounds over {sz('atomics')}: the device adds to one u64 every "
        f"256 bytes ({nwords} `ATOMIC_ADD`s, one job), then the CPU adds to the same words "
        "(`__atomic_fetch_add`); every old value either side gets is checked, and every byte "
        f"at the end. {touched('atomics')} touched.",
        f"- **oversubscribed**: {osp} device streaming passes (`STREAM`, stride 1, one job) over "
        f"{sz('oversubscribed')}, {first['oversubscribed']['size'] // (vram * MIB)} times the "
        "device memory, then the CPU reads it all back and checks it. "
        f"{touched('oversubscribed')} touched.",
        "",
        f"MB/s = 10^6 bytes the workload touches per {unit} of its timed part: each pass of "
        "the device or the CPU over the buffer counts the bytes it reads or writes, the checks' "
        "reads included (an atomic counts its 8 bytes); the CPU's first write of the buffer "
        "is not timed. Every byte is checked: a wrong one (or a failed command) fails the "
        "benchmark, and no table is written. "
        + ("The boot is instruction-counted (`-icount shift=0,sleep=off`): the guest's clock "
           "advances one nanosecond per instruction. " if clock == "icount" else
           "Wall clock: the benchmark kernel's wall-clock boot (multi-threaded TCG, "
           "`tsc=reliable`, CLOCK_MONOTONIC on the TSC). ")
        + f"One boot, the module reloaded between modes: each repetition loads it naive or "
        "policy, runs every workload once, unloads it, then does the same in the other mode "
        f"(naive first in even repetitions, policy first in odd ones); {nreps} counted "
        "repetitions after one warm-up, medians (min–max). The counters are the device's "
        "(`/sys/kernel/debug/rust_hmm_gpu/gpu0/`), over the timed part.",
        "",
        f"Measured {when}"
        + (f"; guest {info['boot']}" if info.get("boot") else "")
        + (f"; {qemu}" if qemu else "")
        + f". The part of the boot that ran it: {info['end'] - info['begin']:.0f} s"
        + (f" (the whole boot: {seconds} s)" if seconds else "") + ".",
        "",
        "| workload | naive MB/s | policy MB/s | policy/naive |",
        "|---|---|---|---|",
    ]
    ratios = {}
    for w in WORKLOADS:
        naive = [mbps(d) for d in samples[("naive", w)]]
        policy = [mbps(d) for d in samples[("policy", w)]]
        ratios[w] = med(policy) / med(naive)
        lines.append(f"| {w} ({sz(w)}) | {spread(naive)} | {spread(policy)} "
                     f"| {ratio(ratios[w])} |")
    lines += [
        "",
        "Device faults serviced per second (`faults` over the timed part) and migration MB/s "
        "(`pages_to_device` + `pages_to_ram`, 4096 bytes each, over the timed part), against "
        f"`memcpy` in the same boot ({size_text(memcpy[0]['size'])} between populated buffers, "
        f"once per repetition): {spread(copy_mbps)} MB/s. Counts are medians per run.",
        "",
        "| workload | mode | device faults/s | migration MB/s | migration/memcpy "
        "| device faults | pages to device + to RAM | evicted pages, pinned blocks, "
        "mapped in place, exclusive |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in WORKLOADS:
        for mode in MODES:
            ds = samples[(mode, w)]
            fps = [d["faults"] / d["ns"] * 1e9 for d in ds]
            mig = [(d["pages_to_device"] + d["pages_to_ram"]) * PAGE / d["ns"] * 1e3
                   for d in ds]

            def m(key):
                return f"{med(d[key] for d in ds):,.0f}"
            lines.append(
                f"| {w} | {mode} | {spread(fps)} | {spread(mig)} "
                f"| {ratio(med(mig) / med(copy_mbps))} | {m('faults')} "
                f"| {m('pages_to_device')} + {m('pages_to_ram')} "
                f"| {m('evicted_pages')}, {m('pins')}, {m('remote_maps')}, {m('exclusive')} |")
    lines += ["", "Goals of the issue (policy/naive):", ""]
    for w, goal in GOALS:
        met = "met" if ratios[w] >= goal else "**not met**"
        lines.append(f"- {w} ≥ {goal}: {met} ({ratio(ratios[w])})")
    return lines


def splice(path, lines):
    """Puts the section into the file at path: in place of its own, or at its end."""
    try:
        with open(path) as fh:
            old = fh.read().splitlines()
    except FileNotFoundError:
        old = []
    start = next((i for i, line in enumerate(old) if line.strip() == TITLE), None)
    if start is None:
        while old and not old[-1].strip():
            old.pop()
        new = old + ([""] if old else []) + lines
    else:
        end = next((i for i in range(start + 1, len(old))
                    if re.match(r"#{1,3} ", old[i])), len(old))
        tail = old[end:]
        new = old[:start] + lines + ([""] + tail if tail else [])
    with open(path, "w") as fh:
        fh.write("\n".join(new) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--console", required=True)
    ap.add_argument("--clock", choices=["wall", "icount"], default="wall")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int)
    ap.add_argument("--qemu")
    args = ap.parse_args()
    lines = section(args.log, args.console, args.clock, args.qemu, args.seconds)
    if lines is None:
        print("bench-policy: FAILED, section not written", file=sys.stderr)
        return 1
    splice(args.out, lines)
    print(f"bench-policy: section \"{TITLE[4:]}\" written to {args.out}")
    for line in lines:
        if line.startswith("- ") and "≥" in line:
            print(f"bench-policy: {line[2:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
