package state

import (
	"errors"
	"strings"
	"testing"
)

const stream = `# a comment
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.7
  ports: [{port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: hl, namespace: shop}
spec:
  clusterIP: None
  ports: [{port: 80, name: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: hl-1, namespace: shop, labels: {kubernetes.io/service-name: hl}}
addressType: IPv4
endpoints:
- {addresses: [10.244.0.8], conditions: {ready: false}}
- {addresses: [10.244.0.9], conditions: {ready: true}}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: example.com}
`

func TestParseDefaultsAndResolve(t *testing.T) {
	st, err := Parse([]byte(stream))
	if err != nil {
		t.Fatal(err)
	}
	ApplyDefaults(st)
	cases := map[string]string{
		"reviews":                         "10.96.0.7",
		"reviews.shop":                    "10.96.0.7",
		"reviews.shop.svc":                "10.96.0.7",
		"reviews.shop.svc.cluster.local":  "10.96.0.7",
		"Reviews.Shop.svc.cluster.local.": "10.96.0.7",
		"hl":                              "10.244.0.9", // headless: first ready endpoint
		"192.0.2.1":                       "192.0.2.1",
	}
	for host, want := range cases {
		if got, err := Resolve(st, host, "shop"); err != nil || got != want {
			t.Errorf("%s: %q %v, want %s", host, got, err, want)
		}
	}
	for _, host := range []string{"reviews.default", "ext", "example.com", "reviews.prod"} {
		if got, err := Resolve(st, host, "shop"); err == nil {
			t.Errorf("%s resolved to %s; want an error", host, got)
		}
	}
	if _, err := Resolve(st, "reviews", "default"); err == nil {
		t.Errorf("a short name resolves in the asking pod's namespace only")
	}
}

func TestErrorsNameDocumentLineAndObject(t *testing.T) {
	bad := stream + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: "Not_A_Label", labels: {version: v1}}]
`
	_, err := Parse([]byte(bad))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *state.Error", err)
	}
	if e.Doc.Index != 4 || e.Doc.Line != 29 || e.Doc.Kind != "DestinationRule" || e.Doc.Name != "reviews" {
		t.Errorf("document %d line %d %s %s", e.Doc.Index, e.Doc.Line, e.Doc.Kind, e.Doc.Name)
	}
	if !strings.Contains(err.Error(), "document 5 (line 29), DestinationRule shop/reviews: rejected by Istio's validation") {
		t.Errorf("message %q", err.Error())
	}
	dup := stream + "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\n"
	if _, err := Parse([]byte(dup)); err == nil || !strings.Contains(err.Error(), "defines the same object as document 1") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestShortHostsResolveLikeIstiodsCRDClient(t *testing.T) {
	st, err := Parse([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c := st.Istio[0]
	if c.Namespace != "default" || c.Domain != DomainSuffix || c.CreationTimestamp != DefaultCreationTimestamp {
		t.Errorf("namespace %q domain %q created %v", c.Namespace, c.Domain, c.CreationTimestamp)
	}
}
