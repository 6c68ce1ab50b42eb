// Package simulate implements `meshlab-oracle simulate`: one complete state, some proxies, some
// calls; istiod's generated xDS for each proxy, Istio's simulation of each call, and meshlab's
// derivation of what Envoy answers. The JSON contract is documented in oracle/README.md.
package simulate

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pkg/config/mesh"
	pm "istio.io/istio/pkg/model"
	"istio.io/istio/pkg/util/protomarshal"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"meshlab/oracle/internal/envoy"
	"meshlab/oracle/internal/istiod"
	"meshlab/oracle/internal/state"
	"meshlab/oracle/internal/version"
)

// Request is the simulate input (stdin).
type Request struct {
	// Objects is the complete state as a multi-document YAML stream.
	Objects string `json:"objects"`
	// MeshConfig overrides fields of Istio's default mesh config (istio.io/api mesh/v1alpha1
	// MeshConfig, JSON field names as in the istio ConfigMap's `mesh` key).
	MeshConfig json.RawMessage `json:"meshConfig,omitempty"`
	Proxies    []Proxy         `json:"proxies"`
	Calls      []Call          `json:"calls"`
	// Config selects which generated xDS to return: "all" (default), "none", or a list of kinds
	// among "listeners", "clusters", "routes", "endpoints".
	Config json.RawMessage `json:"config,omitempty"`
	// ProtoNames writes the generated xDS with Envoy's proto field names (snake_case, the form
	// Envoy's file-based xDS and config_dump use) instead of protojson's lowerCamelCase. Set by
	// `meshlab-oracle xds`; not part of the simulate JSON contract.
	ProtoNames bool `json:"-"`
}

// Proxy is one Envoy to generate configuration for.
type Proxy struct {
	ID string `json:"id"`
	// Type is "sidecar" or "router" (an ingress gateway).
	Type      string            `json:"type"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
	IP        string            `json:"ip"`
	// Pod, "namespace/name", takes Namespace, Labels and IP from that Pod of the state.
	Pod string `json:"pod,omitempty"`
	// Locality, "region/zone/subzone" (or the label form "region.zone.subzone"), is where the
	// proxy runs. With Pod it defaults to what istiod's registry reads for that pod: its
	// topology.istio.io/locality (or istio-locality) label, else its node's
	// topology.kubernetes.io/region, topology.kubernetes.io/zone and topology.istio.io/subzone
	// labels (pilot/pkg/serviceregistry/kube/controller/controller.go getPodLocality).
	Locality string `json:"locality,omitempty"`
	// Gateway, "namespace/name", makes this proxy the deployment Istio creates for that Gateway
	// API Gateway: the oracle adds the Service, Pod (at IP, default 10.255.0.N) and EndpointSlice
	// Istio's gateway deployment controller and Kubernetes would add, and takes Type "router",
	// Namespace and Labels from them.
	Gateway string `json:"gateway,omitempty"`
}

// Call is one connection/request through a proxy.
type Call struct {
	ID    string `json:"id,omitempty"`
	Proxy string `json:"proxy"`
	// Mode: "outbound" (default for a sidecar: the app's connection captured to 15001),
	// "gateway" (default for a router: a connection to a port the proxy binds), "inbound".
	Mode string `json:"mode,omitempty"`
	// Address is the destination IP. When empty for an outbound call, it is resolved from the
	// authority's host the way cluster DNS would for Kubernetes Services (see README).
	Address   string            `json:"address,omitempty"`
	Port      int               `json:"port"`
	Protocol  string            `json:"protocol,omitempty"` // http (default), http2, tcp
	TLS       string            `json:"tls,omitempty"`      // plaintext (default), tls, mtls
	SNI       string            `json:"sni,omitempty"`
	ALPN      string            `json:"alpn,omitempty"`
	Authority string            `json:"authority,omitempty"`
	Path      string            `json:"path,omitempty"`
	Method    string            `json:"method,omitempty"`
	Scheme    string            `json:"scheme,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// Response is the simulate output (stdout).
type Response struct {
	Istio    version.Info           `json:"istio"`
	Warnings []string               `json:"warnings"`
	Objects  map[string]int         `json:"objects"` // count by kind of the state given
	Calls    []CallResult           `json:"calls"`
	Config   map[string]ProxyConfig `json:"config"`
	// Status is what istiod's Gateway API controller would write to the status of each Gateway
	// API object of the state (Gateway, HTTPRoute, ...), in kind, namespace, name order.
	Status []istiod.ObjectStatus `json:"status"`
	Timing Timing                `json:"timing"`
}

// Timing is where the time went, in seconds.
type Timing struct {
	Parse    float64 `json:"parse"`
	Start    float64 `json:"start"`    // istiod harness up, push context built
	Generate float64 `json:"generate"` // xDS for all proxies
	Calls    float64 `json:"calls"`
}

// CallResult is the answer for one call. The top-level fields are meshlab's derivation of Envoy's
// behaviour (package envoy); Istio holds Istio's simulation verbatim.
type CallResult struct {
	ID      string `json:"id,omitempty"`
	Proxy   string `json:"proxy"`
	Address string `json:"address"`
	*envoy.Result
	// Istio is pilot/pkg/simulation's result for the same call, unchanged.
	Istio *istiod.SimResult `json:"istio"`
	// Agree says whether Istio's simulation picked the same listener, filter chain, route
	// configuration, virtual host, route and (single) cluster; Disagreements lists differences.
	Agree         bool     `json:"agree"`
	Disagreements []string `json:"disagreements,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// ProxyConfig is one proxy's generated xDS as Envoy JSON (protojson of the Envoy v3 messages).
type ProxyConfig struct {
	Node      NodeInfo          `json:"node"`
	Listeners []json.RawMessage `json:"listeners,omitempty"`
	Clusters  []json.RawMessage `json:"clusters,omitempty"`
	Routes    []json.RawMessage `json:"routes,omitempty"`
	Endpoints []json.RawMessage `json:"endpoints,omitempty"`
}

// NodeInfo is how istiod saw the proxy.
type NodeInfo struct {
	ID             string            `json:"id"`
	Type           string            `json:"type"`
	Namespace      string            `json:"namespace"`
	IP             string            `json:"ip,omitempty"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceTargets []string          `json:"serviceTargets"`
	Gateways       []string          `json:"gateways,omitempty"`
	IstioVersion   string            `json:"istioVersion"`
}

// InputError is a problem with the request itself (exit status 65).
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

func inputErr(format string, args ...any) error { return &InputError{fmt.Errorf(format, args...)} }

// Run answers a request.
func Run(req *Request) (*Response, error) {
	resp := &Response{Istio: version.Get(), Warnings: []string{}, Calls: []CallResult{}, Config: map[string]ProxyConfig{}}
	kinds, err := configKinds(req.Config)
	if err != nil {
		return nil, &InputError{err}
	}
	t0 := time.Now()
	st, err := state.Parse([]byte(req.Objects))
	if err != nil {
		return nil, &InputError{fmt.Errorf("objects: %w", err)}
	}
	state.ApplyDefaults(st)
	resp.Objects = st.Kinds
	resp.Warnings = append(resp.Warnings, st.Warnings...)
	mc, err := meshConfig(req.MeshConfig)
	if err != nil {
		return nil, &InputError{err}
	}
	for i := range req.Proxies {
		p := &req.Proxies[i]
		if p.Gateway == "" {
			continue
		}
		ns, name, ok := strings.Cut(p.Gateway, "/")
		if !ok || ns == "" || name == "" {
			return nil, inputErr("proxies[%d] (%s): gateway %q: want \"namespace/name\"", i, p.ID, p.Gateway)
		}
		if p.IP == "" {
			p.IP = fmt.Sprintf("10.255.0.%d", i+1)
		}
		labels, err := state.AddGatewayDeployment(st, ns, name, p.IP)
		if err != nil {
			return nil, inputErr("proxies[%d] (%s): %v", i, p.ID, err)
		}
		if p.Type == "" {
			p.Type = "router"
		}
		if p.Namespace == "" {
			p.Namespace = ns
		}
		if p.Labels == nil {
			p.Labels = labels
		}
		p.Pod = ""
	}
	if len(st.Synthesized) > 0 {
		resp.Warnings = append(resp.Warnings, "added as Istio's gateway deployment controller would: "+strings.Join(st.Synthesized, ", "))
	}
	pods := podsOf(st)
	nodes := nodesOf(st)
	t1 := time.Now()
	resp.Timing.Parse = t1.Sub(t0).Seconds()

	if len(req.Proxies) == 0 {
		return nil, inputErr("proxies: at least one proxy is required")
	}
	specs := map[string]istiod.ProxySpec{}
	var order []string
	for i, p := range req.Proxies {
		spec, err := proxySpec(p, pods, nodes)
		if err != nil {
			return nil, inputErr("proxies[%d] (%s): %v", i, p.ID, err)
		}
		if _, dup := specs[p.ID]; dup {
			return nil, inputErr("proxies[%d]: id %q used twice", i, p.ID)
		}
		specs[p.ID] = spec
		order = append(order, p.ID)
	}
	calls := make([]envoy.Request, len(req.Calls))
	for i, c := range req.Calls {
		spec, ok := specs[c.Proxy]
		if !ok {
			return nil, inputErr("calls[%d]: proxy %q is not among proxies", i, c.Proxy)
		}
		r, err := callRequest(c, spec, st)
		if err != nil {
			return nil, inputErr("calls[%d]: %v", i, err)
		}
		calls[i] = r
	}

	srv, err := istiod.Start(st, mc)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	t2 := time.Now()
	resp.Timing.Start = t2.Sub(t1).Seconds()

	proxies := map[string]*istiod.Proxy{}
	for _, id := range order {
		p, err := srv.Proxy(specs[id])
		if err != nil {
			return nil, fmt.Errorf("proxy %q: %w", id, err)
		}
		proxies[id] = p
		pc, err := proxyConfig(p, kinds, req.ProtoNames)
		if err != nil {
			return nil, fmt.Errorf("proxy %q: %w", id, err)
		}
		if kinds != nil {
			resp.Config[id] = pc
		}
	}
	if resp.Status, err = srv.GatewayAPIStatus(10*time.Second, state.DefaultCreationTimestamp); err != nil {
		return nil, err
	}
	t3 := time.Now()
	resp.Timing.Generate = t3.Sub(t2).Seconds()

	for i, c := range req.Calls {
		p := proxies[c.Proxy]
		cr := CallResult{ID: c.ID, Proxy: c.Proxy, Address: calls[i].Address}
		res, err := envoy.Derive(envoy.Config{Listeners: p.Listeners, Routes: p.Routes, Clusters: p.Clusters, Endpoints: p.Endpoints}, calls[i])
		if err != nil {
			cr.Error = err.Error()
			resp.Calls = append(resp.Calls, cr)
			continue
		}
		cr.Result = res
		sim, err := p.Simulate(simCall(calls[i]))
		if err != nil {
			cr.Error = err.Error()
		} else {
			cr.Istio = &sim
			cr.Disagreements = compare(res, sim)
			cr.Agree = len(cr.Disagreements) == 0
		}
		resp.Calls = append(resp.Calls, cr)
	}
	resp.Timing.Calls = time.Since(t3).Seconds()
	return resp, nil
}

func configKinds(raw json.RawMessage) (map[string]bool, error) {
	all := map[string]bool{"listeners": true, "clusters": true, "routes": true, "endpoints": true}
	if len(raw) == 0 {
		return all, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch s {
		case "all":
			return all, nil
		case "none":
			return nil, nil
		}
		return nil, fmt.Errorf("config: %q: want \"all\", \"none\" or a list of kinds", s)
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("config: want \"all\", \"none\" or a list of kinds")
	}
	out := map[string]bool{}
	for _, k := range list {
		if !all[k] {
			return nil, fmt.Errorf("config: unknown kind %q (listeners, clusters, routes, endpoints)", k)
		}
		out[k] = true
	}
	return out, nil
}

func meshConfig(raw json.RawMessage) (*meshconfig.MeshConfig, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return mesh.DefaultMeshConfig(), nil
	}
	y, err := yaml.JSONToYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("meshConfig: %v", err)
	}
	mc, err := mesh.ApplyMeshConfigDefaults(string(y))
	if err != nil {
		return nil, fmt.Errorf("meshConfig: %v", err)
	}
	return mc, nil
}

func podsOf(st *state.State) map[string]*corev1.Pod {
	out := map[string]*corev1.Pod{}
	for _, o := range st.Kubernetes {
		if p, ok := o.(*corev1.Pod); ok {
			out[p.Namespace+"/"+p.Name] = p
		}
	}
	return out
}

func nodesOf(st *state.State) map[string]*corev1.Node {
	out := map[string]*corev1.Node{}
	for _, o := range st.Kubernetes {
		if n, ok := o.(*corev1.Node); ok {
			out[n.Name] = n
		}
	}
	return out
}

// podLocality is istiod's getPodLocality (pilot/pkg/serviceregistry/kube/controller/controller.go):
// the pod's locality label, else its node's topology labels.
func podLocality(pod *corev1.Pod, nodes map[string]*corev1.Node) string {
	if l := pm.GetLocalityLabel(pod.Labels); l != "" {
		return pm.SanitizeLocalityLabel(l)
	}
	node := nodes[pod.Spec.NodeName]
	if node == nil {
		return ""
	}
	region := node.Labels["topology.kubernetes.io/region"]
	if region == "" {
		region = node.Labels["failure-domain.beta.kubernetes.io/region"]
	}
	zone := node.Labels["topology.kubernetes.io/zone"]
	if zone == "" {
		zone = node.Labels["failure-domain.beta.kubernetes.io/zone"]
	}
	subzone := node.Labels["topology.istio.io/subzone"]
	if region == "" && zone == "" && subzone == "" {
		return ""
	}
	return region + "/" + zone + "/" + subzone
}

func proxySpec(p Proxy, pods map[string]*corev1.Pod, nodes map[string]*corev1.Node) (istiod.ProxySpec, error) {
	if p.ID == "" {
		return istiod.ProxySpec{}, fmt.Errorf("id is required")
	}
	spec := istiod.ProxySpec{Type: p.Type, Namespace: p.Namespace, Labels: p.Labels, IP: p.IP,
		Locality: pm.SanitizeLocalityLabel(p.Locality)}
	if spec.Type == "" {
		spec.Type = "sidecar"
	}
	if spec.Type != "sidecar" && spec.Type != "router" {
		return spec, fmt.Errorf("type %q: want \"sidecar\" or \"router\"", p.Type)
	}
	if p.Pod != "" {
		pod, ok := pods[p.Pod]
		if !ok {
			return spec, fmt.Errorf("pod %q is not in the state", p.Pod)
		}
		if spec.Namespace == "" {
			spec.Namespace = pod.Namespace
		}
		if spec.Labels == nil {
			spec.Labels = pod.Labels
		}
		if spec.IP == "" {
			spec.IP = pod.Status.PodIP
		}
		spec.ID = pod.Name + "." + pod.Namespace
		if spec.Locality == "" {
			spec.Locality = podLocality(pod, nodes)
		}
		spec.NodeName = pod.Spec.NodeName
	}
	if spec.Namespace == "" {
		return spec, fmt.Errorf("namespace is required (or pod)")
	}
	if spec.IP != "" && net.ParseIP(spec.IP) == nil {
		return spec, fmt.Errorf("ip %q is not an IP address", spec.IP)
	}
	if spec.ID == "" && spec.IP != "" {
		for _, pod := range pods {
			if pod.Status.PodIP == spec.IP {
				spec.ID = pod.Name + "." + pod.Namespace
			}
		}
	}
	return spec, nil
}

func callRequest(c Call, spec istiod.ProxySpec, st *state.State) (envoy.Request, error) {
	mode := envoy.Mode(c.Mode)
	if mode == "" {
		mode = envoy.Outbound
		if spec.Type == "router" {
			mode = envoy.Gateway
		}
	}
	switch mode {
	case envoy.Outbound, envoy.Gateway, envoy.Inbound:
	default:
		return envoy.Request{}, fmt.Errorf("mode %q: want outbound, gateway or inbound", c.Mode)
	}
	r := envoy.Request{
		Mode: mode, Address: c.Address, Port: c.Port, Protocol: c.Protocol, TLS: c.TLS, SNI: c.SNI, ALPN: c.ALPN,
		Authority: c.Authority, Path: c.Path, Method: c.Method, Scheme: c.Scheme, Headers: c.Headers,
	}
	if r.Address == "" {
		switch mode {
		case envoy.Gateway:
			r.Address = spec.IP
			if r.Address == "" {
				r.Address = "0.0.0.0"
			}
		case envoy.Inbound:
			r.Address = spec.IP
		default:
			host, _ := splitHost(c.Authority)
			ip, err := state.Resolve(st, host, spec.Namespace)
			if err != nil {
				return r, fmt.Errorf("address: %v; give the destination address", err)
			}
			r.Address = ip
		}
	}
	n, err := r.Normalize()
	if err != nil {
		return r, err
	}
	return n, nil
}

func splitHost(authority string) (string, string) {
	if h, p, err := net.SplitHostPort(authority); err == nil {
		return h, p
	}
	return authority, ""
}

func simCall(r envoy.Request) istiod.SimCall {
	c := istiod.SimCall{
		Address:    r.Address,
		Port:       r.Port,
		Path:       r.Path,
		HostHeader: r.Authority,
		Sni:        r.SNI,
		Alpn:       r.ALPN,
	}
	c.Protocol = simulation.Protocol(r.Protocol)
	c.TLS = simulation.TLSMode(r.TLS)
	switch r.Mode {
	case envoy.Gateway:
		c.CallMode = simulation.CallModeGateway
	case envoy.Inbound:
		c.CallMode = simulation.CallModeInbound
	default:
		c.CallMode = simulation.CallModeOutbound
	}
	if len(r.Headers) > 0 {
		c.Headers = map[string][]string{}
		for k, v := range r.Headers {
			c.Headers[k] = []string{v}
		}
	}
	return c
}

// compare lists where Istio's simulation and the derivation differ. Istio's simulation matches
// routes on the path only and reports a cluster only for a single-cluster route.
func compare(d *envoy.Result, s istiod.SimResult) []string {
	var out []string
	diff := func(what, mine, theirs string) {
		if mine != theirs {
			out = append(out, fmt.Sprintf("%s: derived %q, Istio's simulation %q", what, mine, theirs))
		}
	}
	diff("listener", d.Listener, s.Listener)
	if s.Error == "" || s.FilterChain != "" {
		diff("filterChain", d.FilterChain, s.FilterChain)
	}
	if s.RouteConfig != "" {
		diff("routeConfig", d.RouteConfig, s.RouteConfig)
	}
	diff("virtualHost", d.VirtualHost, s.VirtualHost)
	if d.RouteIndex >= 0 || s.Route != "" {
		diff("route", d.Route, s.Route)
	}
	if s.Error == istiod.ErrNoRoute && d.RouteIndex >= 0 {
		out = append(out, "Istio's simulation finds no route; the derivation does")
	}
	if s.Error == "" && d.RouteIndex < 0 && d.VirtualHost != "" && d.Action != "redirect" {
		out = append(out, "Istio's simulation finds a route; the derivation does not")
	}
	if len(d.Clusters) == 1 {
		diff("cluster", d.Clusters[0].Name, s.Cluster)
	} else if len(d.Clusters) == 0 && s.Cluster != "" {
		diff("cluster", "", s.Cluster)
	}
	return out
}

func proxyConfig(p *istiod.Proxy, kinds map[string]bool, protoNames bool) (ProxyConfig, error) {
	m := p.Model
	pc := ProxyConfig{Node: NodeInfo{
		ID: m.ID, Type: string(m.Type), Namespace: m.ConfigNamespace, Labels: m.Labels,
		IstioVersion: m.Metadata.IstioVersion, ServiceTargets: []string{},
	}}
	if len(m.IPAddresses) > 0 {
		pc.Node.IP = m.IPAddresses[0]
	}
	for _, st := range m.ServiceTargets {
		pc.Node.ServiceTargets = append(pc.Node.ServiceTargets, fmt.Sprintf("%s:%d", st.Service.Hostname, st.Port.ServicePort.Port))
	}
	sort.Strings(pc.Node.ServiceTargets)
	if m.MergedGateway != nil {
		for _, gw := range m.MergedGateway.GatewayNameForServer {
			pc.Node.Gateways = appendUnique(pc.Node.Gateways, gw)
		}
		sort.Strings(pc.Node.Gateways)
	}
	if kinds == nil {
		return pc, nil
	}
	var err error
	if kinds["listeners"] {
		if pc.Listeners, err = marshalAll(p.Listeners, protoNames); err != nil {
			return pc, err
		}
	}
	if kinds["clusters"] {
		if pc.Clusters, err = marshalAll(p.Clusters, protoNames); err != nil {
			return pc, err
		}
	}
	if kinds["routes"] {
		if pc.Routes, err = marshalAll(p.Routes, protoNames); err != nil {
			return pc, err
		}
	}
	if kinds["endpoints"] {
		if pc.Endpoints, err = marshalAll(p.Endpoints, protoNames); err != nil {
			return pc, err
		}
	}
	return pc, nil
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func marshalAll[T proto.Message](ms []T, protoNames bool) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(ms))
	for _, m := range ms {
		var b []byte
		var err error
		if protoNames {
			b, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		} else {
			b, err = protomarshal.Marshal(m)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, json.RawMessage(b))
	}
	return out, nil
}
