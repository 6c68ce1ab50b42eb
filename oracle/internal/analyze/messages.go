package analyze

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"meshlab/oracle/internal/version"
)

// Names and descriptions of the messages are not in the linked code (diag.MessageType holds code,
// level and template only); they are in the same module's pkg/config/analysis/msg/messages.yaml,
// from which Istio generates that code. AnnotateFromSource reads that file from the Go module
// cache (read, not copied) and adds names and descriptions, after checking that its code, level
// and template agree with the linked table.

// SourcePath returns where messages.yaml of the linked istio.io/istio is in the module cache.
func SourcePath() (string, error) {
	v := version.Get().Version
	if v == "" {
		return "", fmt.Errorf("the binary has no build information for istio.io/istio")
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		out, err := exec.Command("go", "env", "GOMODCACHE").Output()
		if err != nil {
			return "", fmt.Errorf("GOMODCACHE unset and `go env GOMODCACHE` failed: %v", err)
		}
		cache = strings.TrimSpace(string(out))
	}
	return filepath.Join(cache, "istio.io", "istio@"+v, "pkg", "config", "analysis", "msg", "messages.yaml"), nil
}

// AnnotateFromSource adds names and descriptions from messages.yaml at path.
func AnnotateFromSource(table []MessageType, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var src struct {
		Messages []struct {
			Name        string `json:"name"`
			Code        string `json:"code"`
			Level       string `json:"level"`
			Description string `json:"description"`
			Template    string `json:"template"`
		} `json:"messages"`
	}
	if err := yaml.Unmarshal(b, &src); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	byCode := map[string]int{}
	for i, m := range src.Messages {
		byCode[m.Code] = i
	}
	for i := range table {
		j, ok := byCode[table[i].Code]
		if !ok {
			return fmt.Errorf("%s has no %s, which the linked code has", path, table[i].Code)
		}
		m := src.Messages[j]
		if m.Level != table[i].Level || m.Template != table[i].Template {
			return fmt.Errorf("%s: %s differs from the linked code (level %q vs %q)", path, m.Code, m.Level, table[i].Level)
		}
		table[i].Name = m.Name
		table[i].Description = m.Description
	}
	if len(src.Messages) != len(table) {
		return fmt.Errorf("%s has %d messages, the linked code %d", path, len(src.Messages), len(table))
	}
	return nil
}
