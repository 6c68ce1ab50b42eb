# A real kube-apiserver, kube-controller-manager and etcd for the test suite (tests/_apiserver.py),
# built from the Go modules kube/go.mod pins. Included by the top-level Makefile; `make apiserver`
# builds the three binaries into kube/bin/ when go.mod, go.sum or this file changed, and does
# nothing otherwise. Go's build and module caches make a rebuild after a change cost only what
# changed.
#
# No Go on the machine: the target says so and succeeds, and the API-server tests skip — except
# in CI (CI set), where both fail.

KUBE_DIR  := kube
KUBE_BIN  := $(KUBE_DIR)/bin
KUBE_BINS := $(KUBE_BIN)/kube-apiserver $(KUBE_BIN)/kube-controller-manager $(KUBE_BIN)/etcd
GO        ?= go

# Upstream's release build (kubernetes hack/lib/golang.sh): static, no symbol table or DWARF,
# trimmed paths, the same build tags. Beyond upstream: the compiler writes no DWARF at all (the
# linker's -w drops it anyway), which takes 14% off the compile CPU and 0.3 GB off the build cache
# (bench/README.md). -buildvcs=false: the binaries must not change with every commit here.
KUBE_GOFLAGS := -trimpath -buildvcs=false -tags=selinux,notest,grpcnotrace -gcflags=all=-dwarf=false

.PHONY: apiserver

apiserver:
	@if command -v $(GO) >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(KUBE_BINS); \
	elif [ -n "$$CI" ]; then echo "go not found: CI must build kube-apiserver, kube-controller-manager and etcd (kube/kube.mk)"; exit 1; \
	else echo "go not found: kube-apiserver, kube-controller-manager and etcd are not built; the API-server tests will skip"; fi

# One `go build` for all three, so their shared packages compile once. The version the Kubernetes
# binaries report (/version) is the one go.mod pins, stamped the way hack/lib/version.sh stamps it.
# etcd's main package is go.etcd.io/etcd/server/v3, so go names its binary "server".
$(KUBE_BINS) &: $(KUBE_DIR)/go.mod $(KUBE_DIR)/go.sum $(KUBE_DIR)/kube.mk
	@echo "building kube-apiserver, kube-controller-manager and etcd (kube/go.mod; the first build takes minutes)"
	@cd $(KUBE_DIR) && v=$$($(GO) list -m -f '{{.Version}}' k8s.io/kubernetes) && \
	major=$${v#v}; minor=$${major#*.}; major=$${major%%.*}; minor=$${minor%%.*}; \
	stamp=""; for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do \
		stamp="$$stamp -X $$p.gitVersion=$$v -X $$p.gitMajor=$$major -X $$p.gitMinor=$$minor -X $$p.gitTreeState=clean"; \
	done; \
	CGO_ENABLED=0 $(GO) build $(KUBE_GOFLAGS) -ldflags "-s -w $$stamp" -o bin/ \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager go.etcd.io/etcd/server/v3 && \
	mv -f bin/server bin/etcd
	@touch $(KUBE_BINS)
