package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"meshlab/oracle/internal/kubegen"
	"meshlab/oracle/internal/simulate"
)

// `xds` answers each proxy's whole LDS/CDS/RDS/EDS with Envoy's proto field names (what file-based
// xDS loads), and refuses what only simulate takes.
func TestXDSGivesWholeConfigWithProtoNames(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo, drAll, "bookinfo__networking__virtual-service-reviews-80-20.yaml")
	in, err := json.Marshal(simulate.Request{Objects: objs, Proxies: []simulate.Proxy{productpage}})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"xds"}, bytes.NewReader(in), &out, &errOut); code != 0 {
		t.Fatalf("xds exited %d: %s", code, errOut.String())
	}
	var resp struct {
		Proxies map[string]struct {
			Listeners []map[string]any `json:"listeners"`
			Clusters  []map[string]any `json:"clusters"`
			Routes    []map[string]any `json:"routes"`
			Endpoints []map[string]any `json:"endpoints"`
		} `json:"proxies"`
	}
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("decoding the answer: %v", err)
	}
	p, ok := resp.Proxies["productpage"]
	if !ok {
		t.Fatalf("proxies = %v, want productpage", resp.Proxies)
	}
	names := func(ms []map[string]any, key string) map[string]bool {
		out := map[string]bool{}
		for _, m := range ms {
			name, _ := m[key].(string)
			out[name] = true
		}
		return out
	}
	if !names(p.Listeners, "name")["virtualOutbound"] || !names(p.Routes, "name")["9080"] {
		t.Errorf("listeners %v, routes %v: want virtualOutbound and route configuration 9080",
			names(p.Listeners, "name"), names(p.Routes, "name"))
	}
	v2 := "outbound|9080|v2|reviews.default.svc.cluster.local"
	if !names(p.Clusters, "name")[v2] || !names(p.Endpoints, "cluster_name")[v2] {
		t.Errorf("clusters/endpoints lack %s", v2)
	}
	body := out.String()
	if !strings.Contains(body, `"filter_chains"`) || strings.Contains(body, `"filterChains"`) {
		t.Errorf("want Envoy's proto field names (filter_chains), not lowerCamelCase")
	}

	in, _ = json.Marshal(simulate.Request{Objects: objs, Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Port: 9080}}})
	errOut.Reset()
	if code := run([]string{"xds"}, bytes.NewReader(in), &bytes.Buffer{}, &errOut); code != exitData {
		t.Errorf("xds with calls exited %d, want %d", code, exitData)
	}
}
