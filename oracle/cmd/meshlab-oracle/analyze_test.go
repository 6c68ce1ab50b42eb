package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	istioctlanalyze "istio.io/istio/istioctl/pkg/analyze"
	"istio.io/istio/istioctl/pkg/cli"

	"meshlab/oracle/internal/analyze"
	"meshlab/oracle/internal/testenv"
)

const unknownHostVS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: nosuch
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func analyzeJSON(t *testing.T, args ...string) (analyze.Result, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"analyze", "--json"}, args...), nil, &out, &errOut)
	var res analyze.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("decoding analyze output (exit %d, stderr %s): %v", code, errOut.String(), err)
	}
	return res, code
}

func codes(ms []analyze.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Code+" "+m.Origin)
	}
	sort.Strings(out)
	return out
}

// The cluster view (Services and Pods count) reports the unknown host: IST0101, exit 79.
func TestAnalyzeUnknownHostAsCluster(t *testing.T) {
	vs := writeFile(t, "vs.yaml", unknownHostVS)
	samples := testenv.Samples(t)
	res, code := analyzeJSON(t, "--as-cluster", vs, filepath.Join(samples, bookinfo))
	if code != analyze.ExitAnalyzerFoundIssues || res.ExitStatus != code {
		t.Errorf("exit %d (reported %d), want %d", code, res.ExitStatus, analyze.ExitAnalyzerFoundIssues)
	}
	found := false
	for _, m := range res.Messages {
		if m.Code == "IST0101" && m.Kind == "VirtualService" && m.Namespace == "default" && m.Name == "reviews" {
			found = true
			if m.Level != "Error" || !strings.Contains(m.Message, `"nosuch"`) || m.Line == 0 {
				t.Errorf("IST0101 message %+v", m)
			}
		}
	}
	if !found {
		t.Errorf("no IST0101 on VirtualService default/reviews: %v", codes(res.Messages))
	}
}

// istioctl analyze --use-kube=false ignores Services (and Pods, Namespaces, ...) in files, so the
// destination-host analyzer does not run and an unknown host goes unreported.
func TestAnalyzeFilesSkipsHostCheckLikeIstioctl(t *testing.T) {
	vs := writeFile(t, "vs.yaml", unknownHostVS)
	samples := testenv.Samples(t)
	res, code := analyzeJSON(t, vs, filepath.Join(samples, bookinfo))
	if code != 0 || len(res.Messages) != 0 {
		t.Errorf("exit %d, messages %v; want 0 and none", code, codes(res.Messages))
	}
	skipped := strings.Join(res.SkippedAnalyzers, " ")
	if !strings.Contains(skipped, "virtualservice.DestinationHostAnalyzer") {
		t.Errorf("virtualservice.DestinationHostAnalyzer should be skipped on files: skipped %s", skipped)
	}
}

// The file mode gives what istioctl's own command gives, run in-process on the same files.
func TestAnalyzeMatchesIstioctl(t *testing.T) {
	samples := testenv.Samples(t)
	ours, code := analyzeJSON(t, samples)

	ctx := cli.NewFakeContext(&cli.NewFakeContextOption{IstioNamespace: "istio-system"})
	cmd := istioctlanalyze.Analyze(ctx)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs([]string{"--use-kube=false", samples})
	err := cmd.Execute()
	wantCode := 0
	var found istioctlanalyze.AnalyzerFoundIssuesError
	var parse istioctlanalyze.FileParseError
	switch {
	case errors.As(err, &found):
		wantCode = 79
	case errors.As(err, &parse):
		wantCode = 65
	case err != nil:
		t.Fatalf("istioctl analyze: %v", err)
	}
	if code != wantCode {
		t.Errorf("exit %d, istioctl %d", code, wantCode)
	}
	if got, want := strings.TrimSpace(ours.Log), strings.TrimSpace(out.String()); got != want {
		t.Errorf("messages differ from istioctl's.\nours:\n%s\nistioctl:\n%s\nistioctl stderr:\n%s", got, want, errOut.String())
	}
	if len(ours.Messages) == 0 {
		t.Errorf("the samples folder gives istioctl messages (IST0101 for details v2); got none")
	}
}

func TestMessagesTable(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"messages"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("messages exited %d: %s", code, errOut.String())
	}
	var table struct {
		Messages []analyze.MessageType `json:"messages"`
	}
	if err := json.Unmarshal(out.Bytes(), &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Messages) < 60 {
		t.Errorf("%d messages, want the full table (68 at the pinned commit)", len(table.Messages))
	}
	seen := map[string]bool{}
	for _, m := range table.Messages {
		if seen[m.Code] {
			t.Errorf("code %s twice", m.Code)
		}
		seen[m.Code] = true
		if m.Code == "IST0101" {
			if m.Name != "ReferencedResourceNotFound" || m.Level != "Error" || m.Template != "Referenced %s not found: %q" {
				t.Errorf("IST0101 = %+v", m)
			}
		}
	}
	if !seen["IST0101"] || !seen["IST0106"] {
		t.Errorf("table lacks IST0101 or IST0106")
	}
}
