// Package state turns a multi-document Kubernetes YAML stream (the complete state a meshlab lab
// holds) into the two inputs Istio's in-process discovery server takes
// (istio.io/istio/pilot/test/xds.FakeOptions):
//
//   - Kubernetes objects (core/v1, discovery.k8s.io/v1, apps/v1, gateway.networking.k8s.io, ...)
//     decoded with Istio's own scheme (istio.io/istio/pkg/kube.IstioCodec) and served to istiod's
//     Kubernetes controllers through a fake client, as in a cluster;
//   - Istio configuration (networking.istio.io, security.istio.io, ...) converted and validated
//     with Istio's CRD conversion (istio.io/istio/pilot/pkg/config/kube/crd), as the validating
//     webhook would, and held in istiod's config store.
//
// Gateway API objects go to the Kubernetes side only: istiod reads them through its Kubernetes
// client (pilot/pkg/config/kube/gateway), never from the Istio config store.
package state

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"istio.io/istio/pilot/pkg/config/kube/crd"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/config/schema/resource"
	kubelib "istio.io/istio/pkg/kube"
)

// DefaultCreationTimestamp is given to every object that has no metadata.creationTimestamp, so
// that answers are reproducible. Istio orders VirtualServices, Gateways and routes by creation time,
// then by namespace and name: give objects explicit timestamps when their order matters.
var DefaultCreationTimestamp = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// DomainSuffix is the cluster's DNS domain, as the harness configures istiod (cluster.local).
const DomainSuffix = "cluster.local"

// Document is one YAML document of the input, with where it starts.
type Document struct {
	Index                             int    // 0-based position in the stream (empty documents are not counted)
	Line                              int    // 1-based line of the stream where the document starts
	Raw                               []byte // the document's text
	APIVersion, Kind, Namespace, Name string
}

// Where names the document for error messages: "document 3 (line 41), VirtualService default/reviews".
func (d Document) Where() string {
	obj := d.Kind
	if d.Name != "" {
		if d.Namespace != "" {
			obj += " " + d.Namespace + "/" + d.Name
		} else {
			obj += " " + d.Name
		}
	}
	return fmt.Sprintf("document %d (line %d), %s", d.Index+1, d.Line, strings.TrimSpace(obj))
}

// State is the parsed input.
type State struct {
	Kubernetes []runtime.Object
	Istio      []config.Config
	// Warnings are Istio validation warnings (the webhook would accept the object and warn).
	Warnings []string
	// Counts by kind, for the response.
	Kinds map[string]int
	// Synthesized lists objects the oracle added, as "Kind namespace/name".
	Synthesized []string
}

// Error is a problem with one document of the input.
type Error struct {
	Doc   Document
	Field string // a field path when known
	Err   error
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %v", e.Doc.Where(), e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Doc.Where(), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var separator = regexp.MustCompile(`^---\s*(#.*)?$`)

// Split cuts a YAML stream into documents at "---" lines, as kubectl does, and reads each
// document's apiVersion, kind and metadata.
func Split(stream []byte) ([]Document, error) {
	var docs []Document
	var cur bytes.Buffer
	start, line := 1, 0
	flush := func() error {
		raw := append([]byte(nil), cur.Bytes()...)
		cur.Reset()
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			return nil
		}
		d := Document{Index: len(docs), Line: start, Raw: raw}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(raw, &head); err != nil {
			return &Error{Doc: d, Err: fmt.Errorf("not valid YAML: %v", err)}
		}
		d.APIVersion, d.Kind = head.APIVersion, head.Kind
		d.Name, d.Namespace = head.Metadata.Name, head.Metadata.Namespace
		if d.Kind == "" {
			return &Error{Doc: d, Field: "kind", Err: fmt.Errorf("missing")}
		}
		if d.APIVersion == "" {
			return &Error{Doc: d, Field: "apiVersion", Err: fmt.Errorf("missing")}
		}
		docs = append(docs, d)
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(stream))
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		line++
		text := sc.Text()
		if separator.MatchString(text) {
			if err := flush(); err != nil {
				return nil, err
			}
			start = line + 1
			continue
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

func stripComments(b []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] == '#' {
			continue
		}
		out.Write(l)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// group returns the API group of an apiVersion ("networking.istio.io/v1" → "networking.istio.io").
func group(apiVersion string) string {
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		return apiVersion[:i]
	}
	return ""
}

// IsIstioConfig says whether istiod reads this kind from its config store (Istio's CRDs), as
// opposed to the Kubernetes objects its controllers watch. Gateway API kinds are Kubernetes-side.
func IsIstioConfig(apiVersion, kind string) bool {
	return strings.HasSuffix(group(apiVersion), ".istio.io")
}

// Parse reads the stream into a State. Any document that cannot be decoded, or that Istio's
// validation rejects (as the webhook would), is an *Error naming the document; nothing is
// partially loaded.
func Parse(stream []byte) (*State, error) {
	docs, err := Split(stream)
	if err != nil {
		return nil, err
	}
	st := &State{Kinds: map[string]int{}}
	decode := kubelib.IstioCodec.UniversalDeserializer().Decode
	seen := map[string]Document{}
	for _, d := range docs {
		// One object per group, kind, namespace and name, whatever version a document uses.
		ns := d.Namespace
		if ns == "" && d.Kind != "Namespace" {
			ns = "default"
		}
		key := group(d.APIVersion) + "|" + d.Kind + "|" + ns + "|" + d.Name
		if prev, dup := seen[key]; dup {
			return nil, &Error{Doc: d, Err: fmt.Errorf("defines the same object as %s; the state must hold each object once", prev.Where())}
		}
		seen[key] = d
		st.Kinds[d.Kind]++
		if IsIstioConfig(d.APIVersion, d.Kind) {
			cfg, warn, err := parseIstio(d)
			if err != nil {
				return nil, err
			}
			st.Istio = append(st.Istio, cfg)
			st.Warnings = append(st.Warnings, warn...)
			continue
		}
		obj, _, err := decode(d.Raw, nil, nil)
		if err != nil {
			return nil, &Error{Doc: d, Err: fmt.Errorf("cannot decode as a Kubernetes object: %v", err)}
		}
		if m, err := metaOf(obj); err == nil {
			if ts := m.GetCreationTimestamp(); ts.IsZero() {
				m.SetCreationTimestamp(metav1.NewTime(DefaultCreationTimestamp))
			}
		}
		st.Kubernetes = append(st.Kubernetes, obj)
	}
	return st, nil
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no metadata", obj)
	}
	return m, nil
}

// parseIstio converts one Istio config document and validates it with the schema's own
// validation (the webhook's). Namespace defaults to "default", as `kubectl apply` does.
func parseIstio(d Document) (config.Config, []string, error) {
	var obj crd.IstioKind
	if err := yaml.Unmarshal(d.Raw, &obj); err != nil {
		return config.Config{}, nil, &Error{Doc: d, Err: fmt.Errorf("cannot decode: %v", err)}
	}
	gvk := obj.GroupVersionKind()
	s, ok := collections.PilotGatewayAPI().FindByGroupVersionAliasesKind(resource.FromKubernetesGVK(&gvk))
	if !ok {
		return config.Config{}, nil, &Error{Doc: d, Err: fmt.Errorf("istiod does not know the kind %s", gvk.String())}
	}
	// Domain is what istiod's CRD client sets (pilot/pkg/config/kube/crdclient/client.go): short
	// hosts such as "reviews" resolve to reviews.<namespace>.svc.<DomainSuffix>. Istio's own
	// crd.ParseInputs leaves it empty, which leaves short hosts unresolved.
	cfg, err := crd.ConvertObject(s, &obj, DomainSuffix)
	if err != nil {
		return config.Config{}, nil, &Error{Doc: d, Field: "spec", Err: err}
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.CreationTimestamp.IsZero() {
		cfg.CreationTimestamp = DefaultCreationTimestamp
	}
	warnings, err := s.ValidateConfig(*cfg)
	if err != nil {
		return config.Config{}, nil, &Error{Doc: d, Err: fmt.Errorf("rejected by Istio's validation: %v", err)}
	}
	var out []string
	if warnings != nil {
		out = append(out, fmt.Sprintf("%s: Istio validation warning: %v", d.Where(), warnings))
	}
	return *cfg, out, nil
}
