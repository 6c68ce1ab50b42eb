package main

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"

	"meshlab/oracle/internal/kubegen"
	"meshlab/oracle/internal/simulate"
	"meshlab/oracle/internal/testenv"
)

// BenchmarkSimulateBookinfo is one `meshlab-oracle simulate` request in-process (JSON in, JSON
// out): Bookinfo (4 Services, 6 Pods), all DestinationRules, the 80/20 VirtualService and the
// gateway; two proxies (a sidecar and the ingress gateway), 10 calls, full xDS output.
// bench/oracle.py runs it and reports medians.
func BenchmarkSimulateBookinfo(b *testing.B) {
	objs, err := kubegen.Complete(testenv.Read(b, bookinfo, drAll,
		"bookinfo__networking__virtual-service-reviews-80-20.yaml", "bookinfo__networking__bookinfo-gateway.yaml"),
		kubegen.Options{Sidecar: true})
	if err != nil {
		b.Fatal(err)
	}
	gw := simulate.Proxy{ID: "gw", Type: "router", Namespace: "istio-system", Labels: map[string]string{"istio": "ingressgateway"}, IP: "10.244.9.9"}
	req := simulate.Request{Objects: objs, Proxies: []simulate.Proxy{productpage, gw}}
	for _, host := range []string{"reviews", "ratings", "details", "productpage", "unknown.example"} {
		c := simulate.Call{Proxy: "productpage", Authority: host + ":9080", Port: 9080}
		if host == "unknown.example" {
			c.Address = "203.0.113.1"
		}
		req.Calls = append(req.Calls, c)
	}
	for _, p := range []string{"/productpage", "/static/x", "/login", "/api/v1/products", "/nothing"} {
		req.Calls = append(req.Calls, simulate.Call{Proxy: "gw", Authority: "bookinfo.example", Port: 8080, Path: p})
	}
	in, err := json.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var errOut bytes.Buffer
		if code := run([]string{"simulate"}, bytes.NewReader(in), io.Discard, &errOut); code != 0 {
			b.Fatalf("exit %d: %s", code, errOut.String())
		}
	}
}

// BenchmarkAnalyzeSamples is `meshlab-oracle analyze` on the 27 files of Istio's samples folder.
func BenchmarkAnalyzeSamples(b *testing.B) {
	dir := testenv.Samples(b)
	for i := 0; i < b.N; i++ {
		var errOut bytes.Buffer
		if code := run([]string{"analyze", "--json", dir}, nil, io.Discard, &errOut); code != 79 {
			b.Fatalf("exit %d: %s", code, errOut.String())
		}
	}
}
