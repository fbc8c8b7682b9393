# containerd-shim-box-v1. `sudo make demo` to see it run, `sudo make check` for everything CI runs.

GO        ?= go
OUTPUT    := _output
SHIM      := $(OUTPUT)/bin/containerd-shim-box-v1
DAEMON    := $(OUTPUT)/bin/containerd-shim-box-v1-daemon
TOOLS     := $(OUTPUT)/tools
PEER      := $(OUTPUT)/peer/bin
PREFIX    ?= /usr/local

# Pinned test tools, built from the Go module proxy by hack/tools.sh.
CONTAINERD_VERSION   := v2.4.2
CONTAINERD20_VERSION := v2.0.14
RUNC_VERSION         := v1.3.7

# Where the integration harness finds its binaries (absolute, so tests can run from any dir).
INTEGRATION_ENV := BOX_SHIM_BIN=$(CURDIR)/$(SHIM) BOX_TOOLS=$(CURDIR)/$(TOOLS) BOX_PEER=$(CURDIR)/$(PEER)


.PHONY: all build install tools deps test root-test integration client-suite check lint demo clean

all: build

# Two binaries, installed side by side. containerd-shim-box-v1 (start, delete, and the
# container-side init and exec stages) runs several times for every container, so it links no
# task API, ttrpc or gRPC code and is static, with Go's own user and DNS code: a dynamically
# linked cgo binary spends ~1.5 ms of each start in the dynamic loader and libc. The daemon,
# containerd-shim-box-v1-daemon, is pure Go (docs/benchmarks.md, docs/architecture.md).
BUILD_TAGS    := osusergo,netgo
BUILD_LDFLAGS := -linkmode external -extldflags -static

build:
	CGO_ENABLED=1 $(GO) build -tags $(BUILD_TAGS) -ldflags '$(BUILD_LDFLAGS)' -o $(SHIM) ./cmd/containerd-shim-box-v1
	CGO_ENABLED=0 $(GO) build -o $(DAEMON) ./cmd/containerd-shim-box-v1-daemon

install: build
	install -D -m 0755 $(SHIM) $(DESTDIR)$(PREFIX)/bin/containerd-shim-box-v1
	install -D -m 0755 $(DAEMON) $(DESTDIR)$(PREFIX)/bin/containerd-shim-box-v1-daemon

tools: deps
	TOOLS=$(TOOLS) PEER=$(PEER) CONTAINERD_VERSION=$(CONTAINERD_VERSION) \
		CONTAINERD20_VERSION=$(CONTAINERD20_VERSION) RUNC_VERSION=$(RUNC_VERSION) hack/tools.sh

deps:
	hack/deps.sh

lint:
	@out=$$(gofmt -l .); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test:
	hack/gotest.sh $(OUTPUT)/test.log ./...

# Every Go fuzz target (func Fuzz* in any package) for FUZZTIME each, after its seed corpus
# (testdata/fuzz/<Fuzz>/, also run by `make test`); prints the executions per target
# (hack/fuzz.sh, docs/testing.md). About 10-25 s per target (build, corpus, 6 s of fuzzing); 3.5-4 minutes in all.
FUZZTIME ?= 6s
.PHONY: fuzz
fuzz:
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh $(OUTPUT)/fuzz.log ./...

# -test.root goes after -args (before the packages go test would take the next word as its value)
# and only to test binaries that define it (hack/roottest.sh).
root-test:
	hack/roottest.sh $(OUTPUT)/root-test.log ./oci/... ./runtime/... ./shim/...

integration: build tools
	$(INTEGRATION_ENV) GOTESTFLAGS="-timeout 45m -v" hack/roottest.sh $(OUTPUT)/integration.log ./integration/...

# containerd's own client suite (integration/client at CONTAINERD_VERSION) against box, and
# against the runc shim as the control, offline (hack/client-suite.sh, docs/testing.md).
client-suite: build tools
	TOOLS=$(TOOLS) PEER=$(PEER) SHIM=$(SHIM) CONTAINERD_VERSION=$(CONTAINERD_VERSION) hack/client-suite.sh

# cgroup v2 and a second kernel (Debian's cloud kernel, 6.1) in a throwaway qemu VM (TCG): the
# root tests of VM_TESTS run inside it and are reported as subtests of integration/vm
# (hack/vm/README.md). Entries are "<package>[:<-test.skip regexp>]"; the default leaves out
# what cannot pass yet, with the reasons in hack/vm/README.md. VM_TESTS_ALL is everything.
# "attacks" is integration/attacks_test.go on v2 with the VM's containerd (~3 min under TCG).
VM_TESTS_ALL := runtime runtime/cgroup runtime/rootfs runtime/process containerd attacks
VM_TESTS     ?= runtime runtime/cgroup runtime/rootfs:TestPrepareFinalize|TestMountExchangeRace runtime/process containerd attacks
.PHONY: vm-test
vm-test:
	VM_TESTS="$(VM_TESTS)" CONTAINERD_VERSION=$(CONTAINERD_VERSION) hack/vm/run.sh $(OUTPUT)/vm-test.log

# The systemd cgroup driver's root tests in a VM booted with systemd as pid 1 (a debootstrap'd
# Debian rootfs, same kernel; hack/vm/README.md). VM_SD_TESTS: "<package>[:<-test.run regexp>]".
VM_SD_TESTS ?= runtime/cgroup:Systemd runtime:Systemd containerd
.PHONY: vm-systemd-test
vm-systemd-test:
	VM_SD_TESTS="$(VM_SD_TESTS)" CONTAINERD_VERSION=$(CONTAINERD_VERSION) hack/vm/systemd/run.sh $(OUTPUT)/vm-systemd-test.log

# What CI runs (.ci/run). Every stage runs; the target fails if any failed.
check: deps
	@rm -f $(OUTPUT)/*.log; rc=0; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(MAKE) --no-print-directory test || rc=1; \
	$(MAKE) --no-print-directory fuzz || rc=1; \
	$(MAKE) --no-print-directory root-test || rc=1; \
	$(MAKE) --no-print-directory integration || rc=1; \
	$(MAKE) --no-print-directory vm-test || rc=1; \
	$(MAKE) --no-print-directory vm-systemd-test || rc=1; \
	$(MAKE) --no-print-directory client-suite || rc=1; \
	pass=$$(cat $(OUTPUT)/*.log | grep -cE '^ *--- PASS'); \
	fail=$$(cat $(OUTPUT)/*.log | grep -cE '^ *--- FAIL'); \
	skip=$$(cat $(OUTPUT)/*.log | grep -cE '^ *--- SKIP'); \
	if [ $$rc -ne 0 ]; then echo "check: FAILED (logs in $(OUTPUT)/*.log)"; fi; \
	echo "$$pass passed, $$fail failed, $$skip skipped"; \
	exit $$rc

demo: deps build tools
	TOOLS=$(TOOLS) SHIM=$(SHIM) hack/demo.sh

clean:
	hack/cleanup.sh || true
	rm -rf $(OUTPUT)

# Box vs containerd-shim-runc-v2 + runc on one private containerd (docs/benchmarks.md).
# BENCH_QUICK=1 for a ~2 minute smoke run. Root only; results in $(OUTPUT)/bench.
.PHONY: bench
bench: build tools
	CGO_ENABLED=0 $(GO) build -o $(OUTPUT)/bin/boxbench ./bench/cmd/boxbench
	CGO_ENABLED=0 $(GO) build -o $(OUTPUT)/bin/floorinit ./bench/cmd/floorinit
	CGO_ENABLED=1 $(GO) build -o $(OUTPUT)/bin/containerd-shim-null-v1 ./bench/cmd/nullshim
	$(OUTPUT)/bin/boxbench -out $(OUTPUT)/bench -shim $(SHIM) -tools $(TOOLS)/bin -peer $(PEER) \
		-floor-init $(OUTPUT)/bin/floorinit -null-shim $(OUTPUT)/bin/containerd-shim-null-v1
