#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Every public function of the kernel crate that can fail (it returns a `Result`, or an
initializer with an `Error`) documents its errors in an `# Errors` section of its doc comment.

Usage: doc-errors.py FILE...   (prints each function without one; exit status 1 if any)
"""
import re
import sys

FALLIBLE = re.compile(r"->\s*(?:core::result::)?Result\b|->\s*impl\s+PinInit<[^>]*\bError\b")


def main():
    missing = 0
    count = 0
    for path in sys.argv[1:]:
        lines = open(path).read().split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"\s*pub (?:unsafe )?fn (\w+)", line)
            if not m:
                continue
            sig, j = line, i
            while "{" not in sig and ";" not in sig and j < i + 20 and j + 1 < len(lines):
                j += 1
                sig += lines[j]
            sig = sig.split("{")[0]
            if not FALLIBLE.search(sig):
                continue
            count += 1
            k, doc = i - 1, []
            while k >= 0 and lines[k].strip().startswith(("///", "#[")):
                doc.append(lines[k])
                k -= 1
            if not any(d.strip() == "/// # Errors" for d in doc):
                print(f"{path}:{i + 1}: {m.group(1)} has no # Errors section")
                missing += 1
    print(f"doc-errors: {count} fallible public functions, {missing} without # Errors")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
