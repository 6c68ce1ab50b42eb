// Package testenv finds the reference material the oracle's tests read: Istio's sample manifests
// in ../shared/reference/istio-samples beside the checkout (read, never copied).
package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Samples returns the istio-samples directory, or skips the test saying why it is missing.
// MESHLAB_REFERENCE overrides the reference directory.
func Samples(t testing.TB) string {
	t.Helper()
	ref := os.Getenv("MESHLAB_REFERENCE")
	if ref == "" {
		dir, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "oracle", "go.mod")); err == nil {
				ref = filepath.Join(dir, "..", "shared", "reference")
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				t.Skip("cannot find the repository root (a directory holding oracle/go.mod) above the working directory")
			}
			dir = parent
		}
	}
	samples := filepath.Join(ref, "istio-samples")
	if fi, err := os.Stat(samples); err != nil || !fi.IsDir() {
		t.Skipf("Istio's samples are not at %s (CI keeps ../shared/reference beside the checkout; MESHLAB_REFERENCE overrides)", samples)
	}
	return samples
}

// Read returns the concatenation of sample files (names without directory), as one YAML stream.
func Read(t testing.TB, names ...string) string {
	t.Helper()
	dir := Samples(t)
	var parts []string
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	return strings.Join(parts, "\n---\n")
}
