// Package version records which Istio the oracle links and reads it back from the binary's build
// information, so every answer says which istiod produced it.
package version

import (
	"runtime/debug"
	"strings"
)

// Release is the Istio minor line of the linked istio.io/istio commit (its VERSION file says 1.31;
// the commit is on the release-1.31 branch). Change it together with go.mod; a test checks it
// against the VERSION file of the module in the module cache.
const Release = "1.31"

// ProxyVersion is the Istio version the simulated proxies announce to istiod (node metadata
// ISTIO_VERSION). istiod gates some generated config on it; the harness would otherwise say 1.23.0.
const ProxyVersion = Release + ".0"

// Info says which Istio produced an answer.
type Info struct {
	Module  string `json:"module"`  // istio.io/istio
	Version string `json:"version"` // the module (pseudo-)version from go.mod
	Commit  string `json:"commit"`  // the istio/istio commit, from the pseudo-version
	Release string `json:"release"` // the minor line (Release)
	API     string `json:"api"`     // the istio.io/api module version
	Envoy   string `json:"envoy"`   // the Envoy version that Istio release ships (see README)
}

// Envoy is the Envoy line istio/proxy's release-1.31 branch builds (ENVOY_VERSION.txt there:
// 1.39.1-dev at the proxy commit our Istio commit's istio.deps names, or its predecessor).
const Envoy = "1.39"

// Get reads the linked module versions from the build information.
func Get() Info {
	info := Info{Module: "istio.io/istio", Release: Release, Envoy: Envoy}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	for _, m := range bi.Deps {
		mod := m
		if m.Replace != nil {
			mod = m.Replace
		}
		switch m.Path {
		case "istio.io/istio":
			info.Version = mod.Version
			info.Commit = CommitOf(mod.Version)
		case "istio.io/api":
			info.API = mod.Version
		}
	}
	return info
}

// CommitOf returns the 12-hex commit of a pseudo-version (v0.0.0-20260827124520-eed52ebb66ad →
// eed52ebb66ad), or "" for a release version.
func CommitOf(v string) string {
	if i := strings.LastIndex(v, "-"); i >= 0 && len(v)-i-1 == 12 {
		return v[i+1:]
	}
	return ""
}
