# SPDX-License-Identifier: GPL-2.0
#
# rust-hmm: entry points. This Makefile drives the build of a 6.12 kernel with the project
# laid over it (in build/, git-ignored); it is not a kernel Makefile.

SCRIPTS := tools/testing/rust-hmm
# The suffix of the LLVM tools every kernel build uses (LLVM=), from the scripts' toolchain.sh.
RUST_HMM_LLVM ?= $(shell bash -c '. ./$(SCRIPTS)/toolchain.sh && echo "$$RUST_HMM_LLVM"')

.PHONY: all setup build run shell check bench fmt inject-warn evict-race-unpatched clean distclean

all: run

# Install the toolchain and packages (idempotent).
setup:
	@$(SCRIPTS)/setup.sh

# Build the kernel, both test modules and hmm-tests (incremental).
build: setup
	@$(SCRIPTS)/build.sh

# Build, boot under QEMU and run hmm-tests against the C reference and the Rust device.
run:
	@$(SCRIPTS)/run.sh

# Boot the test kernel with a shell on the console (the modules in /lib/modules, the test
# programs in /bin); Ctrl-A X leaves.
shell:
	@RUST_HMM_SHELL=1 $(SCRIPTS)/run.sh

# The whole test suite: rustfmt, clippy, checkpatch, driver hygiene, the harness's unit
# tests, then the test boot.
check:
	@$(SCRIPTS)/check.sh

# The benchmark: a non-debug build in build/bench, C and Rust alternating in one boot;
# writes BENCHMARK.md.
bench:
	@$(SCRIPTS)/bench.sh

# Format our Rust files with the kernel's rustfmt settings.
fmt: build
	@rustfmt --edition 2021 --config-path build/linux/.rustfmt.toml \
		$$(git ls-files -co --exclude-standard 'rust/*.rs' 'lib/*.rs' 'drivers/*.rs' 'samples/*.rs')

# The anon_vma use-after-free of eviction racing munmap, on a kernel without the fix in
# patches/ (its own tree, build/unpatched): KASAN reports it.
evict-race-unpatched:
	@$(SCRIPTS)/evict-race-unpatched.sh

# Show that a WARN in the Rust device fails the run.
inject-warn:
	@$(SCRIPTS)/inject-warn.sh

# Remove the build products but keep the extracted, configured tree.
clean:
	@[ ! -d build/linux ] || $(MAKE) -C build/linux LLVM=$(RUST_HMM_LLVM) ARCH=x86_64 clean >/dev/null
	@rm -rf build/initramfs build/initramfs.cpio build/hmm-tests build/logs

distclean:
	rm -rf build
