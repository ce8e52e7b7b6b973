#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Unit tests of verdict.py: it must fail a run on everything it is there to catch."""

import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = ["hmm.p.open_close", "hmm.p.anon_read", "hmm2.p.snapshot"]
GPU_TESTS = ["gpu.basic_ops", "gpu.streaming", "unload.jobs_in_flight"]

KUNIT_OK = """[    1.0] KTAP version 1
[    1.0] 1..1
[    1.0]     # Subtest: rust_doctests_kernel
[    1.0]     ok 1 rust_doctest_kernel_cdev_rs_0
[    1.0] # rust_doctests_kernel: pass:1 fail:0 skip:0 total:1
[    1.0] ok 1 rust_doctests_kernel
"""


def suite(name, results, pid=100, prog=None):
    lines = ["@@@ PID %s %d insmod" % (name, pid), "@@@ BEGIN %s" % name]
    if prog:
        lines.append("@@@ PID %s %d %s" % (name, pid + 1, prog))
    lines.append("TAP version 13")
    npass = nfail = nskip = 0
    for i, (test, status) in enumerate(results, 1):
        lines.append("#  RUN           %s ..." % test)
        if status == "pass":
            lines.append("ok %d %s" % (i, test))
            npass += 1
        elif status == "skip":
            lines.append("ok %d %s # SKIP no device" % (i, test))
            nskip += 1
        else:
            lines.append("# %s.c:1:x:Expected ret (-95) == 0 (0)" % (prog or "hmm-tests").rsplit("/", 1)[-1])
            lines.append("not ok %d %s" % (i, test))
            nfail += 1
    lines.append("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0" % (npass, nfail, nskip))
    lines.append("@@@ END %s rc=0 seconds=1.0" % name)
    return lines


def gpu_suite(results, line=True):
    """The gpu suite as init.sh prints it: gpu-tests' TAP, then its "gpu sample:" line."""
    lines = suite("gpu", results, pid=300, prog="/bin/gpu-tests")
    if line is True:
        npass = sum(1 for _, st in results if st == "pass")
        nfail = sum(1 for _, st in results if st == "fail")
        nskip = sum(1 for _, st in results if st == "skip")
        line = "gpu sample: %d passed, %d failed, %d skipped" % (npass, nfail, nskip)
    if line:
        lines.append(line)
    lines.append("@@@ PID gpu 400 rmmod")
    return lines


class Verdict(unittest.TestCase):
    def run_verdict(self, c=None, rust=None, expected=(), console_extra="", done=True,
                    leaks=(), cpus="@@@ CPUS 2 SMP PREEMPT", gpu=None, gpu_line=True,
                    suites=None, extra_events=()):
        c = c or {t: "pass" for t in TESTS}
        rust = rust or {t: "pass" for t in TESTS}
        gpu = gpu or {t: "pass" for t in GPU_TESTS}
        wanted = (suites or "c,rust,gpu").split(",")
        results = ["@@@ BOOTED 6.12"] + ([cpus] if cpus else [])
        if "c" in wanted:
            results += suite("c", c.items())
        if "rust" in wanted:
            results += [l.replace("@@@ PID rust 100", "@@@ PID rust 200")
                        for l in suite("rust", rust.items())]
        results += list(extra_events)
        if "gpu" in wanted and gpu_line is not None:
            results += gpu_suite(gpu.items(), gpu_line)
        results.append("@@@ KMEMLEAK %d" % len(leaks))
        for leak in leaks:
            comm, pid = leak if isinstance(leak, tuple) else ("insmod", leak)
            results += ["unreferenced object 0xffff888102b42ba0 (size 16):",
                        '  comm "%s", pid %d, jiffies 4294898434' % (comm, pid)]
        if done:
            results.append("@@@ DONE")
        with tempfile.TemporaryDirectory() as d:
            paths = {}
            for name, text in (("console", KUNIT_OK + console_extra),
                               ("results", "\n".join(results) + "\n"),
                               ("expected", "# comment\n" + "\n".join(expected) + "\n")):
                paths[name] = os.path.join(d, name)
                with open(paths[name], "w") as f:
                    f.write(text)
            args = [sys.executable, os.path.join(HERE, "verdict.py"),
                    "--console", paths["console"], "--results", paths["results"],
                    "--expected", paths["expected"]]
            if suites:
                args += ["--suites", suites]
            p = subprocess.run(args, capture_output=True, text=True)
        return p.returncode, p.stdout

    def test_all_pass(self):
        rc, out = self.run_verdict()
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.rstrip().endswith("3 passed, 0 failed, 0 skipped"), out)
        self.assertIn("\ngpu sample: 3 passed, 0 failed, 0 skipped\n", out)

    def test_gpu_line_missing(self):
        rc, out = self.run_verdict(gpu_line=False)
        self.assertEqual(rc, 1, out)
        self.assertIn("printed no 'gpu sample:", out)
        self.assertIn("gpu sample: no result line", out)

    def test_gpu_suite_missing(self):
        # The module was not built: init.sh says so, and there is no gpu suite at all.
        rc, out = self.run_verdict(gpu_line=None, extra_events=[
            "@@@ PRECONDITION gpu /lib/modules/rust_hmm_gpu.ko is not in the initramfs"])
        self.assertEqual(rc, 1, out)
        self.assertIn("rust_hmm_gpu.ko is not in the initramfs", out)
        self.assertIn("suite gpu did not run", out)

    def test_gpu_failure(self):
        rc, out = self.run_verdict(gpu={"gpu.basic_ops": "pass", "gpu.streaming": "fail",
                                        "unload.jobs_in_flight": "pass"})
        self.assertEqual(rc, 1, out)
        self.assertIn("gpu sample: 2 passed, 1 failed, 0 skipped: every gpu test must pass", out)
        self.assertIn("gpu test failed: gpu.streaming", out)
        self.assertIn("gpu-tests.c:1:x:Expected", out)
        self.assertTrue(out.rstrip().endswith("3 passed, 0 failed, 0 skipped"), out)

    def test_gpu_skip(self):
        rc, out = self.run_verdict(gpu={"gpu.basic_ops": "pass", "gpu.streaming": "pass",
                                        "unload.jobs_in_flight": "skip"})
        self.assertEqual(rc, 1, out)
        self.assertIn("gpu sample: 2 passed, 0 failed, 1 skipped", out)
        self.assertIn("gpu test skipped: ok 3 unload.jobs_in_flight # SKIP", out)

    def test_gpu_line_disagrees_with_totals(self):
        rc, out = self.run_verdict(gpu_line="gpu sample: 9 passed, 0 failed, 0 skipped")
        self.assertEqual(rc, 1, out)
        self.assertIn("disagrees with the suite's '# Totals: pass:3", out)

    def test_gpu_only(self):
        # rust_hmm.tests=gpu: neither hmm-tests suite is wanted.
        rc, out = self.run_verdict(suites="gpu")
        self.assertEqual(rc, 0, out)
        self.assertIn("gpu sample: 3 passed, 0 failed, 0 skipped", out)
        rc, out = self.run_verdict(suites="gpu", gpu_line=False)
        self.assertEqual(rc, 1, out)

    def test_gpu_not_wanted(self):
        rc, out = self.run_verdict(suites="c,rust", gpu_line=None)
        self.assertEqual(rc, 0, out)
        self.assertNotIn("gpu sample", out)

    def test_gpu_leaks(self):
        # The PID line's pid, and a forked test process of gpu-tests (by its command name).
        for leak in ((300, ), (("gpu-tests", 12345), ), (400, )):
            rc, out = self.run_verdict(leaks=leak)
            self.assertEqual(rc, 1, out)
            self.assertIn("leaked by gpu ", out)
        # insmod ran for every suite: an unknown insmod pid stays unattributed.
        rc, out = self.run_verdict(leaks=[("insmod", 12345)])
        self.assertEqual(rc, 1, out)
        self.assertIn("leaked by insmod (pid 12345)", out)

    def test_not_smp(self):
        for cpus in ("@@@ CPUS 1 SMP PREEMPT", "@@@ CPUS 2 UP", None):
            rc, out = self.run_verdict(cpus=cpus)
            self.assertEqual(rc, 1, out)
            self.assertTrue("SMP" in out or "CPUs" in out, out)

    def test_unexpected_failure(self):
        rc, out = self.run_verdict(rust={"hmm.p.open_close": "pass", "hmm.p.anon_read": "fail",
                                         "hmm2.p.snapshot": "pass"})
        self.assertEqual(rc, 1, out)
        self.assertIn("Rust fail where C pass: hmm.p.anon_read", out)

    def test_expected_failure(self):
        rc, out = self.run_verdict(rust={"hmm.p.open_close": "pass", "hmm.p.anon_read": "fail",
                                         "hmm2.p.snapshot": "pass"},
                                   expected=["hmm.p.anon_read"])
        self.assertEqual(rc, 0, out)
        self.assertTrue(out.rstrip().endswith("2 passed, 1 failed, 0 skipped"), out)

    def test_listed_test_that_passes(self):
        rc, out = self.run_verdict(expected=["hmm.p.anon_read"])
        self.assertEqual(rc, 1, out)
        self.assertIn("now passes", out)

    def test_skip_where_c_passed(self):
        rc, out = self.run_verdict(rust={"hmm.p.open_close": "pass", "hmm.p.anon_read": "skip",
                                         "hmm2.p.snapshot": "pass"})
        self.assertEqual(rc, 1, out)

    def test_missing_rust_test(self):
        rc, out = self.run_verdict(rust={"hmm.p.open_close": "pass"})
        self.assertEqual(rc, 1, out)

    def test_warn_fails_even_if_all_pass(self):
        rc, out = self.run_verdict(console_extra="[    5.0] WARNING: CPU: 0 PID: 1 at lib/x.c:1 f+0x1/0x2\n")
        self.assertEqual(rc, 1, out)
        self.assertIn("WARNING: CPU: 0", out)

    def test_lockdep_kasan_oops(self):
        for report in ("WARNING: possible circular locking dependency detected",
                       "BUG: KASAN: slab-use-after-free in f+0x1/0x2",
                       "Oops: general protection fault, probably for non-canonical address",
                       "Kernel panic - not syncing: Fatal exception",
                       "INFO: task hmm-tests:300 blocked for more than 120 seconds."):
            rc, out = self.run_verdict(console_extra="[    5.0] %s\n" % report)
            self.assertEqual(rc, 1, report)

    def test_hang_or_crash(self):
        rc, out = self.run_verdict(done=False)
        self.assertEqual(rc, 1, out)

    def test_leaks(self):
        rc, out = self.run_verdict(leaks=[100])
        self.assertEqual(rc, 0, out)
        self.assertIn("C reference leaked", out)
        rc, out = self.run_verdict(leaks=[200])
        self.assertEqual(rc, 1, out)
        self.assertIn("leaked by rust", out)

    def test_kunit_failure(self):
        rc, out = self.run_verdict(console_extra="[    1.0]     # Subtest: other\n[    1.0] not ok 2 other\n")
        self.assertEqual(rc, 1, out)


class BenchTableTest(unittest.TestCase):
    """The benchmark's verdict (bench-table.py): its test must tell a real deficit from the
    noise, and the ratio rule's null estimate must see what it is there to see."""

    @classmethod
    def setUpClass(cls):
        import importlib.util
        spec = importlib.util.spec_from_file_location(
            "bench_table", os.path.join(HERE, "bench-table.py"))
        cls.bt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.bt)

    def test_every_rust_sample_slowest(self):
        # 5 of 15 samples ranked lowest: one draw in C(15, 5) = 3003.
        p = self.bt.slower_p([90, 91, 92, 93, 94], [100, 101, 102, 103, 104] * 2)
        self.assertAlmostEqual(p, 1 / 3003)
        self.assertLess(p, self.bt.ALPHA)

    def test_interleaved_is_noise(self):
        p = self.bt.slower_p([99, 101, 103, 105, 107], [100, 102, 104, 106, 108] * 2)
        self.assertGreater(p, self.bt.ALPHA)

    def test_ties_and_faster(self):
        self.assertEqual(self.bt.slower_p([5] * 5, [5] * 10), 1.0)
        self.assertEqual(self.bt.slower_p([110] * 5, [100] * 10), 1.0)

    def test_one_outlier_does_not_hide_a_deficit(self):
        # Rust 3% slower, tight; one C sample hit by the host: still behind.
        ref = [100, 100.2, 99.9, 100.1, 60, 100.3, 99.8, 100, 100.1, 99.9]
        self.assertLess(self.bt.slower_p([97, 97.1, 96.9, 97.2, 97], ref), self.bt.ALPHA)

    def test_many_repetitions_stay_bounded(self):
        # RUST_HMM_BENCH_REPS=10: C(30, 10) ways, too many to count; the estimate still tells
        # a clear deficit from interleaved samples.
        import time
        t = time.monotonic()
        low = self.bt.slower_p([90 + i * 0.1 for i in range(10)], [100 + i * 0.1 for i in range(20)])
        mixed = self.bt.slower_p([100 + i for i in range(0, 20, 2)], [100 + i for i in range(1, 21)])
        self.assertLess(time.monotonic() - t, 30)
        self.assertLess(low, self.bt.ALPHA)
        self.assertGreater(mixed, self.bt.ALPHA)

    def test_ratio_rule_null(self):
        # A cell whose C and C2 samples spread by 10%: drawn three times from them, the
        # ratio rule calls it behind in a good part of the draws.
        samples = {("c", "op", "k", 1): [(v, 1) for v in (90, 95, 100, 105, 110)],
                   ("c2", "op", "k", 1): [(v, 1) for v in (92, 97, 101, 104, 108)]}
        rate = self.bt.ratio_rule_null(samples, [("op", "k", 1)], trials=400)
        self.assertGreater(rate, 0.1)
        self.assertLess(rate, 0.5)


if __name__ == "__main__":
    unittest.main()
