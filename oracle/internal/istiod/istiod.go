// Package istiod runs istiod's translation in-process for one complete state: Istio's own unit-test
// harness (istio.io/istio/pilot/test/xds.FakeDiscoveryServer: the real Kubernetes controllers on a
// fake client, the real config store, push context and xDS generators) and Istio's request
// simulation (istio.io/istio/pilot/pkg/simulation). No cluster, API server or container runtime.
package istiod

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	gatewayconsts "sigs.k8s.io/gateway-api/pkg/consts"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/networking/util"
	labelutil "istio.io/istio/pilot/pkg/serviceregistry/util/label"
	clusterid "istio.io/istio/pkg/cluster"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	kubelib "istio.io/istio/pkg/kube"

	"meshlab/oracle/internal/failer"
	"meshlab/oracle/internal/state"
	"meshlab/oracle/internal/version"
)

// Server is a running in-process istiod for one state. Close it when done.
type Server struct {
	f    *failer.Failer
	fake *xds.FakeDiscoveryServer
}

// Start builds the discovery server from the state and waits until its push context is ready.
// Errors are the harness's own t.Fatal messages (for example an object istiod cannot use).
func Start(st *state.State, mc *meshconfig.MeshConfig) (*Server, error) {
	f := failer.New()
	s := &Server{f: f}
	err := f.Run(func() {
		s.fake = xds.NewFakeDiscoveryServer(f, xds.FakeOptions{
			KubernetesObjects:  st.Kubernetes,
			Configs:            st.Istio,
			MeshConfig:         mc,
			KubeClientModifier: gatewayAPICRDsAsInstalled,
		})
	})
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("istiod's discovery server did not start: %w", err)
	}
	return s, nil
}

// gatewayAPICRDsAsInstalled makes the harness's Gateway API CRDs carry the bundle-version
// annotation the real ones carry (`gateway.networking.k8s.io/bundle-version`, the version of the
// linked sigs.k8s.io/gateway-api), as in a cluster where they were installed from that release.
// The harness creates them bare (clienttest.MakeCRD), and istiod's CRD watcher ignores a Gateway
// API CRD without that annotation when it has a minimum version (kclient/crdwatcher.go,
// minimumVersionFilter): GRPCRoute, TCPRoute and TLSRoute would never be read.
func gatewayAPICRDsAsInstalled(c kubelib.Client) {
	fmc, ok := c.Metadata().(*metadatafake.FakeMetadataClient)
	if !ok {
		return
	}
	fmc.PrependReactor("*", "customresourcedefinitions", func(a k8stesting.Action) (bool, runtime.Object, error) {
		withObject, ok := a.(interface{ GetObject() runtime.Object })
		if !ok {
			return false, nil, nil
		}
		crd, ok := withObject.GetObject().(*metav1.PartialObjectMetadata)
		if !ok || !strings.HasSuffix(crd.Name, ".gateway.networking.k8s.io") {
			return false, nil, nil
		}
		if crd.Annotations == nil {
			crd.Annotations = map[string]string{}
		}
		if _, set := crd.Annotations[gatewayconsts.BundleVersionAnnotation]; !set {
			crd.Annotations[gatewayconsts.BundleVersionAnnotation] = gatewayconsts.BundleVersion
		}
		return false, nil, nil // changed in place; the tracker stores it
	})
}

// Close stops the server's goroutines and informers.
func (s *Server) Close() error { return s.f.Close() }

// ProxySpec describes the Envoy whose configuration is generated.
type ProxySpec struct {
	Type      string            // "sidecar" or "router"
	Namespace string            // the proxy's namespace (ConfigNamespace)
	Labels    map[string]string // the workload's labels (gateway selectors and Sidecar workloadSelector use them)
	IP        string            // the workload's IP; istiod finds the pod, and so the proxy's Services, by it
	ID        string            // "<pod>.<namespace>" when known; defaults to "meshlab-oracle.<namespace>"
	// Locality is "region/zone/subzone" (empty: none). istiod reads it from the registry (the
	// pod's node, or its topology.istio.io/locality label) and adds the topology labels to the
	// proxy's labels (pilot/pkg/xds/ads.go setTopologyLabels); the harness's SetupProxy does not,
	// so Proxy does it here.
	Locality string
	NodeName string // the pod's node (kubernetes.io/hostname among the proxy's labels)
}

// Proxy is one proxy's generated configuration, with Istio's simulation over it.
type Proxy struct {
	Model     *model.Proxy
	Listeners []*listener.Listener
	Clusters  []*cluster.Cluster
	Routes    []*route.RouteConfiguration
	Endpoints []*endpoint.ClusterLoadAssignment
	sim       *simulation.Simulation
}

// Proxy sets up a proxy as istiod does when it connects (sidecar scope, service targets, merged
// gateways) and generates its LDS, CDS, RDS and EDS.
func (s *Server) Proxy(spec ProxySpec) (*Proxy, error) {
	var nodeType model.NodeType
	switch spec.Type {
	case "sidecar", "":
		nodeType = model.SidecarProxy
	case "router", "gateway":
		nodeType = model.Router
	default:
		return nil, fmt.Errorf("proxy type %q: want \"sidecar\" or \"router\"", spec.Type)
	}
	if spec.Namespace == "" {
		return nil, fmt.Errorf("proxy namespace is required")
	}
	id := spec.ID
	if id == "" {
		id = "meshlab-oracle." + spec.Namespace
	}
	p := &model.Proxy{
		Type:            nodeType,
		ID:              id,
		ConfigNamespace: spec.Namespace,
		Labels:          spec.Labels,
		Metadata: &model.NodeMetadata{
			Namespace: spec.Namespace,
			Labels:    spec.Labels,
			// Generate config for a proxy of the pinned release (the harness defaults to 1.23.0).
			IstioVersion: version.ProxyVersion,
		},
	}
	if spec.IP != "" {
		p.IPAddresses = []string{spec.IP}
	}
	if spec.Locality != "" || spec.NodeName != "" {
		if spec.Locality != "" {
			p.Locality = util.ConvertLocality(spec.Locality)
		}
		p.Labels = labelutil.AugmentLabels(p.Labels, clusterid.ID("Kubernetes"), util.LocalityToString(p.Locality),
			spec.NodeName, "")
		p.Metadata.Labels = p.Labels
	}
	out := &Proxy{}
	err := s.f.Run(func() {
		out.Model = s.fake.SetupProxy(p)
		// simulation.NewSimulation keeps its *testing.T only to report malformed xDS; Call runs
		// each call where such a report cannot end the program.
		out.sim = simulation.NewSimulation(&testing.T{}, s.fake, out.Model)
		out.Listeners = out.sim.Listeners
		out.Clusters = out.sim.Clusters
		out.Routes = out.sim.Routes
		out.Endpoints = s.fake.Endpoints(out.Model)
	})
	if err != nil {
		return nil, fmt.Errorf("generating the proxy's configuration: %w", err)
	}
	sort.Slice(out.Endpoints, func(i, j int) bool { return out.Endpoints[i].ClusterName < out.Endpoints[j].ClusterName })
	return out, nil
}

// SimCall is a call as Istio's simulation takes it (istio.io/istio/pilot/pkg/simulation.Call).
type SimCall = simulation.Call

// SimResult is Istio's simulation's answer, verbatim.
type SimResult struct {
	Listener    string `json:"listener"`
	FilterChain string `json:"filterChain"`
	RouteConfig string `json:"routeConfig"`
	VirtualHost string `json:"virtualHost"`
	Route       string `json:"route"`
	Cluster     string `json:"cluster"`
	Error       string `json:"error,omitempty"`
}

// Simulate runs Istio's simulation for one call. A malformed-xDS report from the simulation
// (its t.Fatal on a zero testing.T) comes back as an error instead of ending the program.
func (p *Proxy) Simulate(c SimCall) (res SimResult, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("Istio's simulation aborted on this call: %v", r)
			}
		}()
		r := p.sim.Run(c)
		res = SimResult{
			Listener:    r.ListenerMatched,
			FilterChain: r.FilterChainMatched,
			RouteConfig: r.RouteConfigMatched,
			VirtualHost: r.VirtualHostMatched,
			Route:       r.RouteMatched,
			Cluster:     r.ClusterMatched,
		}
		if r.Error != nil {
			res.Error = r.Error.Error()
		}
	}()
	<-done
	return res, err
}

// SimulationErrors are the sentinel errors of Istio's simulation, by their text.
var (
	ErrNoListener          = simulation.ErrNoListener.Error()
	ErrNoFilterChain       = simulation.ErrNoFilterChain.Error()
	ErrNoRoute             = simulation.ErrNoRoute.Error()
	ErrTLSRedirect         = simulation.ErrTLSRedirect.Error()
	ErrNoVirtualHost       = simulation.ErrNoVirtualHost.Error()
	ErrMultipleFilterChain = simulation.ErrMultipleFilterChain.Error()
	ErrProtocolError       = simulation.ErrProtocolError.Error()
	ErrTLSError            = simulation.ErrTLSError.Error()
	ErrMTLSError           = simulation.ErrMTLSError.Error()
)

// IsConnectionError says whether Istio's simulation error means the connection itself fails.
func IsConnectionError(e string) bool {
	switch e {
	case ErrNoListener, ErrNoFilterChain, ErrMultipleFilterChain, ErrProtocolError, ErrTLSError, ErrMTLSError:
		return true
	}
	return strings.HasPrefix(e, "invalid call")
}

// Fake exposes the harness for diagnostics.
func (s *Server) Fake() *xds.FakeDiscoveryServer { return s.fake }
