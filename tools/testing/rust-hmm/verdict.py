#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Judge one test boot of the rust-hmm kernel.

Reads the kernel console (ttyS0) and the test output (ttyS1) of a boot made by run.sh and
decides:
  * every hmm-tests result of the Rust device is compared with the C reference of the same
    boot: a Rust failure, or a Rust skip where C passed, is a failure;
  * a failure is accepted only if the test is listed in the expected-failures file, and a
    listed test that now passes fails the run too (the list may only shrink);
  * the GPU sample driver's kselftest (suite gpu, gpu-tests) must end with the line
    "gpu sample: N passed, F failed, S skipped" that init.sh prints from its TAP totals,
    with F and S 0: a failed or skipped gpu test fails the run;
  * any oops, BUG, WARN, lockdep, KASAN or kmemleak report, panic, missing suite, failed
    precondition, failed KUnit test or hang fails the run, whatever the tests said.
The last line is "N passed, N failed, N skipped" for the Rust device.
"""

import argparse
import re
import sys

TAP = re.compile(r"^(ok|not ok) (\d+) (\S+)(.*)$")
TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)")
TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
KUNIT_SUITE = re.compile(r"^\s*(ok|not ok) \d+ (\S+)(.*)$")
GPU_LINE = re.compile(r"^gpu sample: (\d+) passed, (\d+) failed, (\d+) skipped$")

# Kernel reports that fail a run even when every test passed.
BAD_CONSOLE = [
    r"\bOops\b",
    r"\bBUG[: ]",
    r"WARNING:",
    r"kernel BUG at",
    r"Kernel panic",
    r"general protection fault",
    r"\bKASAN\b",
    r"UBSAN:",
    r"possible circular locking",
    r"possible recursive locking",
    r"INFO: task .* blocked for more than",
    r"rcu: INFO: .* detected stalls",
    r"soft lockup",
    r"hard LOCKUP",
    r"rust_kernel: panicked",
    r"Call Trace:",
    r"list_(add|del) corruption",
    r"page dumped because",
    r"Unable to handle kernel",
    r"segfault at",
]
BAD_RE = re.compile("|".join(BAD_CONSOLE))


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\r\n").replace("\r", "") for line in f]
    except FileNotFoundError:
        return []


def parse_suites(lines):
    """Returns {suite: {"results": {test: (status, line)}, "totals": ..., "end": ..., "log": [...]}}."""
    suites = {}
    events = []
    cur = None
    for line in lines:
        if line.startswith("@@@ "):
            words = line.split()
            if words[1] == "BEGIN":
                cur = suites.setdefault(words[2], {"results": {}, "totals": None, "end": None, "log": []})
            elif words[1] == "END":
                if cur is not None:
                    cur["end"] = line
                cur = None
            else:
                events.append(line)
            continue
        if cur is None:
            continue
        cur["log"].append(line)
        m = TAP.match(line)
        if m:
            verdict, _, name, rest = m.groups()
            if verdict == "ok" and "# SKIP" in rest:
                status = "skip"
            elif verdict == "ok":
                status = "pass"
            else:
                status = "fail"
            cur["results"][name] = (status, line)
        m = TOTALS.match(line)
        if m:
            cur["totals"] = line
    return suites, events


def test_log(suite, name):
    """The hmm-tests output of one test, from its RUN line to its result line."""
    out, on = [], False
    for line in suite["log"]:
        if re.match(r"^#\s+RUN\s+%s\b" % re.escape(name), line):
            on = True
        if on:
            out.append(line)
        if on and TAP.match(line):
            break
    return out


def gpu_verdict(results, suite):
    """The GPU sample's suite: (its "gpu sample:" line or None, the problems it shows)."""
    lines = [l for l in results if GPU_LINE.match(l)]
    if not lines:
        return None, ["the gpu suite printed no 'gpu sample: N passed, F failed, S skipped' line"]
    line = lines[-1]
    npass, nfail, nskip = (int(x) for x in GPU_LINE.match(line).groups())
    problems = []
    if nfail or nskip:
        problems.append("%s: every gpu test must pass" % line)
    tests = suite["results"] if suite else {}
    for name, (status, tap) in tests.items():
        if status == "fail":
            log = test_log(suite, name)
            problems.append("gpu test failed: %s" % name +
                            ("\n    " + "\n    ".join(log[-15:]) if log else ""))
        elif status == "skip":
            problems.append("gpu test skipped: %s" % tap)
    m = TOTALS.match(suite["totals"]) if suite and suite["totals"] else None
    if m:
        tp, tf, _, txp, ts, te = (int(x) for x in m.groups())
        if (tp, tf + txp + te, ts) != (npass, nfail, nskip):
            problems.append("'%s' disagrees with the suite's '%s'" % (line, suite["totals"]))
    return line, problems


def kernel_reports(console):
    """Lines of the console that report a kernel problem, with some context."""
    hits = []
    lines = [TIMESTAMP.sub("", l) for l in console]
    i = 0
    while i < len(lines):
        if BAD_RE.search(lines[i]):
            hits.append(lines[max(0, i - 2): i + 30])
            i += 30
        else:
            i += 1
    return hits


def kunit_results(console):
    """Top-level KUnit suites: {suite: "ok"/"not ok"}, with their counts line if printed."""
    suites, counts = {}, {}
    for raw in console:
        line = TIMESTAMP.sub("", raw)
        # Top-level suite results are indented by 4 spaces under "KTAP version 1" in 6.12's
        # executor output only when nested; accept any indent but require a known suite name
        # seen in a "# Subtest:" line.
        m = re.match(r"^\s*# Subtest: (\S+)", line)
        if m:
            suites.setdefault(m.group(1), None)
            continue
        m = re.match(r"^\s*# (\S+): pass:(\d+) fail:(\d+) skip:(\d+) total:(\d+)", line)
        if m and m.group(1) in suites:
            counts[m.group(1)] = tuple(int(x) for x in m.groups()[1:])
            continue
        m = KUNIT_SUITE.match(line)
        if m and m.group(2) in suites:
            suites[m.group(2)] = m.group(1)
    return suites, counts


def load_expected(path):
    names = []
    for line in read(path):
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--console", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--expected", required=True)
    ap.add_argument("--suites", default="c,rust,gpu")
    ap.add_argument("--timed-out", type=int, default=0)
    args = ap.parse_args()

    console = read(args.console)
    results = read(args.results)
    suites, events = parse_suites(results)
    expected = load_expected(args.expected)
    wanted = args.suites.split(",")
    problems = []
    notes = []
    checks = []

    if args.timed_out:
        problems.append("the boot did not finish within %d s (hang)" % args.timed_out)
    cpus = [ev.split()[2:] for ev in events if ev.startswith("@@@ CPUS")]
    if not cpus:
        problems.append("the boot did not say how many CPUs it runs")
    elif not cpus[0][0].isdigit() or int(cpus[0][0]) < 2 or "SMP" not in cpus[0][1:]:
        problems.append("the test kernel is not SMP: %s" % " ".join(cpus[0]))
    else:
        notes.append("the guest ran %s CPUs, %s" % (cpus[0][0], " ".join(cpus[0][1:])))
    if not any(l.startswith("@@@ DONE") for l in results):
        problems.append("the test boot did not reach its end (crash, panic or hang)")
    for ev in events:
        if ev.startswith(("@@@ PRECONDITION", "@@@ RMMOD", "@@@ UNKNOWN")):
            problems.append(ev[4:])
        m = re.match(r"@@@ CHECK (\S+) (ok|FAIL): (.*)", ev)
        if m:
            checks.append(ev[10:])
            if m.group(2) != "ok" and m.group(1) in wanted:
                problems.append("check of suite %s failed: %s" % (m.group(1), m.group(3)))
    # kmemleak: each leak is charged to the suite whose task allocated it, or whose command
    # has that name if only one suite ran it (the forked children of a kselftest harness).
    pids, comms = {}, {}
    for ev in events:
        m = re.match(r"@@@ PID (\S+) (\d+)(?: (\S+))?", ev)
        if m:
            pids[int(m.group(2))] = m.group(1)
            if m.group(3):
                comms.setdefault(m.group(3).rsplit("/", 1)[-1][:15], set()).add(m.group(1))
    leaks = {}
    for line in results:
        m = re.match(r'^\s*comm "(.*)", pid (\d+)', line)
        if m:
            by_comm = comms.get(m.group(1), set())
            owner = pids.get(int(m.group(2)), next(iter(by_comm)) if len(by_comm) == 1 else
                             "%s (pid %s)" % m.groups())
            leaks[owner] = leaks.get(owner, 0) + 1
    if not any(ev.startswith("@@@ KMEMLEAK") for ev in events):
        problems.append("kmemleak did not run")
    if "@@@ KMEMLEAK off" in events:
        notes.append("kmemleak was not run (RUST_HMM_KMEMLEAK=0)")
    for owner, n in sorted(leaks.items()):
        if owner == "c":
            notes.append("kmemleak: the C reference leaked %d objects (known: it never puts its "
                         "devices)" % n)
        else:
            problems.append("kmemleak: %d objects leaked by %s (reports in %s)" % (n, owner, args.results))

    for name in wanted:
        s = suites.get(name)
        if s is None:
            problems.append("suite %s did not run" % name)
        elif s["end"] is None:
            problems.append("suite %s did not finish" % name)
        elif s["totals"] is None:
            problems.append("suite %s printed no '# Totals' line" % name)

    # Every check made against C must also have been made against the Rust device.
    def check_names(suite):
        return {re.sub(r"^\S+ (ok|FAIL): ", "", ch) for ch in checks if ch.startswith(suite + " ")}
    if "c" in wanted and "rust" in wanted:
        for name in sorted(check_names("c") - check_names("rust")):
            problems.append("check made for C but not for Rust: %s" % name)

    # The GPU sample driver's kselftest.
    gpu_line = None
    if "gpu" in wanted:
        gpu_line, gpu_problems = gpu_verdict(results, suites.get("gpu"))
        problems += gpu_problems

    # KUnit (the kernel crate's doctests run at boot).
    ksuites, kcounts = kunit_results(console)
    if not ksuites:
        problems.append("no KUnit results on the console (are the doctests built in?)")
    for ks, res in sorted(ksuites.items()):
        if res != "ok":
            problems.append("KUnit suite %s: %s" % (ks, res or "no result"))
    kunit_summary = ", ".join(
        "%s %d/%d" % (ks, c[0], c[3]) for ks, c in sorted(kcounts.items())) or "none"

    # Kernel reports.
    reports = kernel_reports(console)
    for rep in reports:
        problems.append("kernel report on the console:\n    " + "\n    ".join(rep))

    # Compare Rust with C, test by test.
    c = suites.get("c", {"results": {}})["results"]
    r = suites.get("rust", {"results": {}})["results"]
    names = list(c) + [n for n in r if n not in c]
    rust_pass = rust_fail = rust_skip = 0
    unexpected, fixed, expected_seen = [], [], []
    for n in names:
        cs = c.get(n, ("missing", ""))[0]
        rs = r.get(n, ("missing", ""))[0]
        if "rust" in wanted:
            if rs == "pass":
                rust_pass += 1
            elif rs == "skip" and cs != "pass":
                rust_skip += 1
            else:
                rust_fail += 1
        bad = "rust" in wanted and (rs == "fail" or rs == "missing" or (rs == "skip" and cs == "pass"))
        if bad and n in expected:
            expected_seen.append(n)
        elif bad:
            unexpected.append((n, cs, rs))
        elif "rust" in wanted and n in expected and rs == "pass":
            fixed.append(n)
        print("%-60s C:%-5s Rust:%s%s" % (n, cs, rs, "  (expected failure)" if bad and n in expected else ""))
    for n in expected:
        if n not in names and "rust" in wanted:
            problems.append("expected-failures lists %s, which hmm-tests did not run" % n)

    for n, cs, rs in unexpected:
        problems.append("Rust %s where C %s: %s" % (rs, cs, n))
        log = test_log(suites.get("rust", {"log": []}), n)
        if log:
            problems[-1] += "\n    " + "\n    ".join(log[-15:])
    for n in fixed:
        problems.append("%s now passes: remove it from %s" % (n, args.expected))
    for n in names:
        if c.get(n, ("missing",))[0] not in ("pass",) and "c" in wanted:
            print("note: the C reference did not pass %s (%s)" % (n, c.get(n, ("missing",))[0]))

    notes += [ev[9:] for ev in events if ev.startswith("@@@ NOTE ")]
    for n in notes:
        print("note: " + n)
    print()
    for name in wanted:
        s = suites.get(name)
        if s:
            print("%-5s %s   %s" % (name, s["totals"] or "(no totals)", (s["end"] or "").replace("@@@ ", "")))
    print("KUnit: %s" % kunit_summary)
    for ch in checks:
        print("check: " + ch)
    if problems:
        print("\nFAILED:")
        for p in problems:
            print("  - " + p)
    cpass = sum(1 for v in c.values() if v[0] == "pass")
    cfail = sum(1 for v in c.values() if v[0] == "fail")
    cskip = sum(1 for v in c.values() if v[0] == "skip")
    if "gpu" in wanted:
        print("\n%s" % (gpu_line or "gpu sample: no result line"))
    print("\nC reference: %d passed, %d failed, %d skipped" % (cpass, cfail, cskip))
    print("Rust device: %d expected failures listed, %d seen" % (len(expected), len(expected_seen)))
    print("%d passed, %d failed, %d skipped" % (rust_pass, rust_fail, rust_skip))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
