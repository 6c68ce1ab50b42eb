package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"meshlab/oracle/internal/kubegen"
	"meshlab/oracle/internal/simulate"
	"meshlab/oracle/internal/testenv"
	"meshlab/oracle/internal/version"
)

const (
	bookinfo = "bookinfo__platform__kube__bookinfo.yaml"
	drAll    = "bookinfo__networking__destination-rule-all.yaml"
	reviews  = "outbound|9080||reviews.default.svc.cluster.local"
)

// state completes Istio's sample manifests into a cluster state (Pods, EndpointSlices).
func state(t *testing.T, opts kubegen.Options, extra string, samples ...string) string {
	t.Helper()
	full, err := kubegen.Complete(testenv.Read(t, samples...)+"\n---\n"+extra, opts)
	if err != nil {
		t.Fatal(err)
	}
	return full
}

// simulateJSON runs `meshlab-oracle simulate` on a request and decodes the answer.
func simulateJSON(t *testing.T, req simulate.Request) *simulate.Response {
	t.Helper()
	if req.Config == nil {
		req.Config = json.RawMessage(`"none"`)
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"simulate"}, bytes.NewReader(in), &out, &errOut); code != 0 {
		t.Fatalf("simulate exited %d: %s", code, errOut.String())
	}
	var resp simulate.Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		t.Fatalf("decoding the answer: %v\n%s", err, out.String())
	}
	if len(resp.Calls) != len(req.Calls) {
		t.Fatalf("%d calls answered, want %d", len(resp.Calls), len(req.Calls))
	}
	for i, c := range resp.Calls {
		if c.Error != "" {
			t.Fatalf("call %d: %s", i, c.Error)
		}
	}
	return &resp
}

var productpage = simulate.Proxy{ID: "productpage", Pod: "default/productpage-v1-0"}

func TestReviews8020GivesTwoWeightedSubsetClusters(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo, drAll, "bookinfo__networking__virtual-service-reviews-80-20.yaml")
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Authority: "reviews:9080", Port: 9080, Path: "/reviews/0"}},
	})
	c := resp.Calls[0]
	if c.Listener != "0.0.0.0_9080" || c.RouteConfig != "9080" || c.VirtualHost != "reviews.default.svc.cluster.local:9080" {
		t.Errorf("listener/route config/virtual host = %q/%q/%q", c.Listener, c.RouteConfig, c.VirtualHost)
	}
	want := map[string]uint32{
		"outbound|9080|v1|reviews.default.svc.cluster.local": 80,
		"outbound|9080|v2|reviews.default.svc.cluster.local": 20,
	}
	if len(c.Clusters) != 2 {
		t.Fatalf("clusters = %+v, want two weighted subset clusters", c.Clusters)
	}
	for _, cl := range c.Clusters {
		if w, ok := want[cl.Name]; !ok || w != cl.Weight {
			t.Errorf("cluster %s weight %d, want %v", cl.Name, cl.Weight, want)
		}
		if !cl.Exists || cl.Endpoints == nil || cl.Endpoints.Healthy != 1 {
			t.Errorf("cluster %s: exists=%v endpoints=%+v, want in CDS with 1 healthy endpoint", cl.Name, cl.Exists, cl.Endpoints)
		}
	}
	if c.Outcome != nil || len(c.Outcomes) != 2 || c.Outcomes[0].Percent != 80 || c.Outcomes[0].Outcome.Kind != "upstream" {
		t.Errorf("outcomes = %+v, want upstream 80%% and 20%%", c.Outcomes)
	}
}

func TestUndefinedSubsetGives503NC(t *testing.T) {
	// All traffic to subset v1, and no DestinationRule defines subsets.
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo, "bookinfo__networking__virtual-service-all-v1.yaml")
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Authority: "reviews:9080", Port: 9080}},
	})
	c := resp.Calls[0]
	if len(c.Clusters) != 1 || c.Clusters[0].Name != "outbound|9080|v1|reviews.default.svc.cluster.local" || c.Clusters[0].Exists {
		t.Fatalf("clusters = %+v, want the v1 subset cluster, missing from CDS", c.Clusters)
	}
	if o := c.Outcome; o == nil || o.Status != 503 || o.Flags != "NC" || o.Details != "cluster_not_found" {
		t.Errorf("outcome = %+v, want 503 NC cluster_not_found", c.Outcome)
	}
}

func TestNoVirtualServiceGivesDefaultRoute(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo)
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Authority: "reviews:9080", Port: 9080}},
	})
	c := resp.Calls[0]
	if c.Route != "default" || len(c.Clusters) != 1 || c.Clusters[0].Name != reviews {
		t.Fatalf("route %q clusters %+v, want route \"default\" to %s", c.Route, c.Clusters, reviews)
	}
	if e := c.Clusters[0].Endpoints; e == nil || e.Healthy != 3 {
		t.Errorf("endpoints %+v, want 3 healthy (reviews v1, v2, v3)", e)
	}
	if o := c.Outcome; o == nil || o.Kind != "upstream" || o.Cluster != reviews {
		t.Errorf("outcome %+v, want upstream through %s", o, reviews)
	}
	if !c.Agree || c.Istio == nil || c.Istio.Route != "default" || c.Istio.Cluster != reviews {
		t.Errorf("Istio's simulation: %+v (agree=%v %v)", c.Istio, c.Agree, c.Disagreements)
	}
}

func TestNoReadyEndpointGives503UH(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true, NotReady: map[string]bool{"ratings-v1": true}}, "", bookinfo)
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Authority: "ratings:9080", Port: 9080}},
	})
	c := resp.Calls[0]
	// Istio 1.31 sends the unready endpoint as UNHEALTHY and sets healthy_panic_threshold 0, so
	// Envoy's panic mode does not route to it.
	e := c.Clusters[0].Endpoints
	if len(c.Clusters) != 1 || !c.Clusters[0].Exists || e == nil || e.Total != 1 || e.Unhealthy != 1 || e.PanicThresholdPercent != 0 {
		t.Fatalf("clusters %+v endpoints %+v, want the ratings cluster with its one endpoint UNHEALTHY, panic threshold 0", c.Clusters, e)
	}
	if o := c.Outcome; o == nil || o.Status != 503 || o.Flags != "UH" {
		t.Errorf("outcome %+v, want 503 UH", o)
	}
}

func TestHeaderMatchAndFaultAbort(t *testing.T) {
	// ratings-test-abort: requests with end-user: jason get a 500 abort (100%); others go to v1.
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo, drAll, "bookinfo__networking__virtual-service-ratings-test-abort.yaml")
	reviewsV2 := simulate.Proxy{ID: "reviews", Pod: "default/reviews-v2-0"}
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{reviewsV2},
		Calls: []simulate.Call{
			{Proxy: "reviews", Authority: "ratings:9080", Port: 9080, Headers: map[string]string{"end-user": "jason"}},
			{Proxy: "reviews", Authority: "ratings:9080", Port: 9080},
		},
	})
	jason, other := resp.Calls[0], resp.Calls[1]
	if o := jason.Outcome; o == nil || o.Status != 500 || o.Flags != "FI" || o.Details != "fault_filter_abort" {
		t.Errorf("jason: outcome %+v, want 500 FI fault_filter_abort", o)
	}
	if o := other.Outcome; o == nil || o.Kind != "upstream" || o.Cluster != "outbound|9080|v1|ratings.default.svc.cluster.local" {
		t.Errorf("others: outcome %+v, want upstream through ratings v1", o)
	}
	if jason.RouteIndex != 0 || other.RouteIndex != 1 {
		t.Errorf("route indexes %d, %d; want 0 (the header route) and 1", jason.RouteIndex, other.RouteIndex)
	}
	// Istio's simulation matches on the path only, so it takes the first route for both calls;
	// the routes are unnamed and both send to v1, so only the fault tells them apart.
	if other.Istio == nil || other.Istio.Cluster != "outbound|9080|v1|ratings.default.svc.cluster.local" {
		t.Errorf("Istio's simulation: %+v", other.Istio)
	}
}

func TestAuthorityIsCaseInsensitiveForVirtualHosts(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo)
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Authority: "Reviews.Default:9080", Port: 9080}},
	})
	c := resp.Calls[0]
	if c.VirtualHost != "reviews.default.svc.cluster.local:9080" {
		t.Errorf("virtual host %q; Envoy lower-cases the authority before matching domains", c.VirtualHost)
	}
	if c.Istio == nil || c.Istio.VirtualHost != "allow_any" || c.Agree {
		t.Errorf("Istio's simulation (case-sensitive) should pick allow_any and disagree: %+v", c.Istio)
	}
}

func TestIngressGateway(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo, "bookinfo__networking__bookinfo-gateway.yaml")
	gw := simulate.Proxy{ID: "gw", Type: "router", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}, IP: "10.244.9.9"}
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{gw},
		Calls: []simulate.Call{
			{Proxy: "gw", Authority: "bookinfo.example", Port: 8080, Path: "/productpage"},
			{Proxy: "gw", Authority: "bookinfo.example", Port: 8080, Path: "/admin"},
			{Proxy: "gw", Authority: "bookinfo.example", Port: 80, Path: "/productpage"},
		},
	})
	if o := resp.Calls[0].Outcome; o == nil || o.Kind != "upstream" || o.Cluster != "outbound|9080||productpage.default.svc.cluster.local" {
		t.Errorf("/productpage: %+v", o)
	}
	if o := resp.Calls[1].Outcome; o == nil || o.Status != 404 || o.Flags != "NR" {
		t.Errorf("/admin: %+v, want 404 NR", o)
	}
	if o := resp.Calls[2].Outcome; o == nil || o.Kind != "connection_refused" || resp.Calls[2].Listener != "" {
		t.Errorf("port 80 (no server): %+v, want connection refused", o)
	}
}

const gatewayAPI = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: istio
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: web}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs:
    - {name: reviews, port: 9080}
  - matches: [{path: {type: PathPrefix, value: /gone}}]
    backendRefs:
    - {name: nosuch, port: 9080}
`

func TestGatewayAPI(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, gatewayAPI, bookinfo)
	resp := simulateJSON(t, simulate.Request{
		Objects: objs, Proxies: []simulate.Proxy{{ID: "web", Gateway: "default/web"}},
		Calls: []simulate.Call{
			{Proxy: "web", Authority: "a.example", Port: 80, Path: "/api/x"},
			{Proxy: "web", Authority: "a.example", Port: 80, Path: "/apix"},
			{Proxy: "web", Authority: "a.example", Port: 80, Path: "/gone"},
		},
	})
	if o := resp.Calls[0].Outcome; o == nil || o.Kind != "upstream" || o.Cluster != reviews {
		t.Errorf("/api/x: %+v", o)
	}
	// PathPrefix is segment-wise (path_separated_prefix): /api does not match /apix.
	if o := resp.Calls[1].Outcome; o == nil || o.Status != 404 || o.Flags != "NR" {
		t.Errorf("/apix: %+v, want 404 NR", o)
	}
	// A backend Service that does not exist: Istio sets cluster_not_found_response_code 500.
	if o := resp.Calls[2].Outcome; o == nil || o.Status != 500 || o.Flags != "NC" {
		t.Errorf("/gone: %+v, want 500 NC", o)
	}
	if !strings.Contains(strings.Join(resp.Warnings, " "), "Service default/web-istio") {
		t.Errorf("warnings should name the objects added for the gateway deployment: %v", resp.Warnings)
	}
}

// istiod's Gateway API controller reports status: a route whose backend Service does not exist is
// Accepted but ResolvedRefs False (BackendNotFound); one to another namespace without a
// ReferenceGrant, RefNotPermitted; the Gateway is Accepted and Programmed with one attached route.
func TestGatewayAPIStatus(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, gatewayAPI+`
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [other.example]
  rules:
  - backendRefs: [{name: ratings, namespace: elsewhere, port: 9080}]
`, bookinfo)
	resp := simulateJSON(t, simulate.Request{Objects: objs, Proxies: []simulate.Proxy{{ID: "web", Gateway: "default/web"}}})
	type cond struct{ Type, Status, Reason, Message string }
	conditions := func(kind, name string) []cond {
		for _, o := range resp.Status {
			if o.Kind != kind || o.Name != name {
				continue
			}
			var st struct {
				Conditions []cond
				Parents    []struct{ Conditions []cond }
			}
			if err := json.Unmarshal(o.Status, &st); err != nil {
				t.Fatal(err)
			}
			for _, p := range st.Parents {
				st.Conditions = append(st.Conditions, p.Conditions...)
			}
			return st.Conditions
		}
		t.Fatalf("no status for %s %s in %+v", kind, name, resp.Status)
		return nil
	}
	find := func(cs []cond, typ string) cond {
		for _, c := range cs {
			if c.Type == typ {
				return c
			}
		}
		t.Fatalf("no condition %s in %+v", typ, cs)
		return cond{}
	}
	if c := find(conditions("HTTPRoute", "api"), "ResolvedRefs"); c.Status != "False" || c.Reason != "BackendNotFound" {
		t.Errorf("api ResolvedRefs: %+v, want False BackendNotFound", c)
	}
	if c := find(conditions("HTTPRoute", "api"), "Accepted"); c.Status != "True" {
		t.Errorf("api Accepted: %+v", c)
	}
	if c := find(conditions("HTTPRoute", "other"), "ResolvedRefs"); c.Status != "False" || c.Reason != "RefNotPermitted" {
		t.Errorf("other ResolvedRefs: %+v, want False RefNotPermitted", c)
	}
	gw := conditions("Gateway", "web")
	if find(gw, "Accepted").Status != "True" || find(gw, "Programmed").Status != "True" {
		t.Errorf("Gateway web: %+v", gw)
	}
}

func TestBadInputNamesTheObject(t *testing.T) {
	bad := `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {regex: "^/(?!internal).*"}}]
    route: [{destination: {host: reviews}}]
`
	in, _ := json.Marshal(simulate.Request{Objects: bad, Proxies: []simulate.Proxy{{ID: "p", Namespace: "default"}}})
	var out, errOut bytes.Buffer
	code := run([]string{"simulate"}, bytes.NewReader(in), &out, &errOut)
	if code != exitData {
		t.Fatalf("exit %d, want %d; stderr: %s", code, exitData, errOut.String())
	}
	for _, want := range []string{"document 1 (line 1)", "VirtualService default/broken", "rejected by Istio's validation"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr %q lacks %q", errOut.String(), want)
		}
	}
	if out.Len() != 0 {
		t.Errorf("nothing should be written to stdout on bad input, got %q", out.String())
	}
}

func TestVersionNamesThePinnedCommit(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("version exited %d: %s", code, errOut.String())
	}
	var info version.Info
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatal(err)
	}
	if info.Module != "istio.io/istio" || info.Commit == "" || !strings.HasSuffix(info.Version, "-"+info.Commit) || info.API == "" {
		t.Fatalf("version info %+v", info)
	}
	// The Release constant must be the linked commit's own VERSION file.
	cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("go env GOMODCACHE: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(cache)), "istio.io", "istio@"+info.Version, "VERSION"))
	if err != nil {
		t.Skipf("the module's VERSION file is not in the module cache: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != info.Release {
		t.Errorf("the linked istio.io/istio says VERSION %s; version.Release says %s", got, info.Release)
	}
}

// istiod reads endpoints from EndpointSlices only; Pods alone give a cluster no hosts.
func TestEndpointsComeFromEndpointSlicesOnly(t *testing.T) {
	objs := state(t, kubegen.Options{Sidecar: true}, "", bookinfo)
	var kept []string
	for _, doc := range strings.Split(objs, "\n---\n") {
		if !strings.Contains(doc, "kind: EndpointSlice") {
			kept = append(kept, doc)
		}
	}
	resp := simulateJSON(t, simulate.Request{
		Objects: strings.Join(kept, "\n---\n"), Proxies: []simulate.Proxy{productpage},
		Calls: []simulate.Call{{Proxy: "productpage", Authority: "reviews:9080", Port: 9080}},
	})
	c := resp.Calls[0]
	if len(c.Clusters) != 1 || c.Clusters[0].Endpoints == nil || c.Clusters[0].Endpoints.Total != 0 {
		t.Fatalf("clusters %+v: want the reviews cluster with no hosts", c.Clusters)
	}
	if o := c.Outcome; o == nil || o.Status != 503 || o.Flags != "UH" {
		t.Errorf("outcome %+v, want 503 UH", o)
	}
}
