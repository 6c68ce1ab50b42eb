// Package kubegen completes a manifest (Services and Deployments, as a learner applies them) into
// the state a cluster would hold a moment later: the Pods the Deployments' ReplicaSets create,
// Ready, with IPs, and the EndpointSlices the EndpointSlice controller writes for each selecting
// Service. istiod never derives endpoints from Pods; it reads EndpointSlices
// (pilot/pkg/serviceregistry/kube/controller/endpointslice.go), so a state without them has no
// endpoints. meshlab's labs hold complete states already; this package serves the oracle's tests
// and benchmarks, which start from Istio's sample manifests.
package kubegen

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"meshlab/oracle/internal/state"
)

// Options tune the generated state.
type Options struct {
	// PodCIDRPrefix is the first three octets of pod IPs ("10.244.0").
	PodCIDRPrefix string
	// NotReady names Deployments whose pods are not Ready (EndpointSlice conditions.ready=false).
	NotReady map[string]bool
	// Sidecar adds the labels istio-injection gives an injected pod
	// (security.istio.io/tlsMode=istio, service.istio.io/canonical-name/-revision).
	Sidecar bool
}

// Complete returns the input documents followed by Pods and EndpointSlices as YAML documents.
// Namespaces that objects use but that the input does not define are added (labelled
// istio-injection=enabled when opts.Sidecar).
func Complete(manifest string, opts Options) (string, error) {
	if opts.PodCIDRPrefix == "" {
		opts.PodCIDRPrefix = "10.244.0"
	}
	docs, err := state.Split([]byte(manifest))
	if err != nil {
		return "", err
	}
	var services []corev1.Service
	var deployments []appsv1.Deployment
	namespaces := map[string]bool{}
	definedNS := map[string]bool{}
	for _, d := range docs {
		ns := d.Namespace
		if ns == "" {
			ns = "default"
		}
		switch d.Kind {
		case "Namespace":
			definedNS[d.Name] = true
		case "Service":
			var s corev1.Service
			if err := yaml.Unmarshal(d.Raw, &s); err != nil {
				return "", fmt.Errorf("%s: %v", d.Where(), err)
			}
			s.Namespace = ns
			services = append(services, s)
			namespaces[ns] = true
		case "Deployment":
			var dep appsv1.Deployment
			if err := yaml.Unmarshal(d.Raw, &dep); err != nil {
				return "", fmt.Errorf("%s: %v", d.Where(), err)
			}
			dep.Namespace = ns
			deployments = append(deployments, dep)
			namespaces[ns] = true
		default:
			if d.Namespace != "" {
				namespaces[d.Namespace] = true
			}
		}
	}
	var out []any
	nsNames := keys(namespaces)
	for _, ns := range nsNames {
		if definedNS[ns] {
			continue
		}
		n := corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if opts.Sidecar {
			n.Labels = map[string]string{"istio-injection": "enabled"}
		}
		out = append(out, n)
	}
	// Service cluster IPs where the manifest leaves them to the API server.
	for i := range services {
		s := &services[i]
		if s.Spec.ClusterIP == "" && s.Spec.Type != corev1.ServiceTypeExternalName {
			s.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", (i+10)/250, (i+10)%250)
		}
	}
	var pods []corev1.Pod
	ip := 10
	for _, dep := range deployments {
		replicas := 1
		if dep.Spec.Replicas != nil {
			replicas = int(*dep.Spec.Replicas)
		}
		for r := 0; r < replicas; r++ {
			p := corev1.Pod{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
				ObjectMeta: metav1.ObjectMeta{
					Name:      fmt.Sprintf("%s-%d", dep.Name, r),
					Namespace: dep.Namespace,
					Labels:    copyMap(dep.Spec.Template.Labels),
				},
				Spec: dep.Spec.Template.Spec,
			}
			if opts.Sidecar {
				p.Labels["security.istio.io/tlsMode"] = "istio"
				if _, ok := p.Labels["service.istio.io/canonical-name"]; !ok {
					if app := p.Labels["app"]; app != "" {
						p.Labels["service.istio.io/canonical-name"] = app
					}
				}
			}
			ready := corev1.ConditionTrue
			if opts.NotReady[dep.Name] {
				ready = corev1.ConditionFalse
			}
			p.Status = corev1.PodStatus{
				Phase: corev1.PodRunning,
				PodIP: fmt.Sprintf("%s.%d", opts.PodCIDRPrefix, ip),
				Conditions: []corev1.PodCondition{
					{Type: corev1.PodReady, Status: ready},
				},
			}
			p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
			ip++
			pods = append(pods, p)
		}
	}
	for _, p := range services {
		out = append(out, withKind(p, "v1", "Service"))
	}
	for _, p := range pods {
		out = append(out, p)
	}
	for _, s := range services {
		if len(s.Spec.Selector) == 0 {
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var ports []discoveryv1.EndpointPort
		var eps []discoveryv1.Endpoint
		for _, p := range pods {
			if p.Namespace != s.Namespace || !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			ready := p.Status.Conditions[0].Status == corev1.ConditionTrue
			eps = append(eps, discoveryv1.Endpoint{
				Addresses:  []string{p.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready, Terminating: ptr(false)},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name},
			})
		}
		for _, sp := range s.Spec.Ports {
			name := sp.Name
			port := targetPort(sp)
			proto := sp.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			ep := discoveryv1.EndpointPort{Name: &name, Port: &port, Protocol: &proto}
			if sp.AppProtocol != nil {
				ep.AppProtocol = sp.AppProtocol
			}
			ports = append(ports, ep)
		}
		slice := discoveryv1.EndpointSlice{
			TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta: metav1.ObjectMeta{
				Name:      s.Name + "-slice",
				Namespace: s.Namespace,
				Labels:    map[string]string{discoveryv1.LabelServiceName: s.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   eps,
			Ports:       ports,
		}
		out = append(out, slice)
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(otherDocuments(docs), "\n"))
	for _, o := range out {
		y, err := yaml.Marshal(o)
		if err != nil {
			return "", err
		}
		b.WriteString("\n---\n")
		b.Write(y)
	}
	return b.String() + "\n", nil
}

// otherDocuments keeps every input document except Services (emitted again with their cluster
// IPs) and Deployments (whose Pods stand for them; istiod does not read Deployments).
func otherDocuments(docs []state.Document) string {
	var b strings.Builder
	for _, d := range docs {
		if d.Kind == "Service" || d.Kind == "Deployment" {
			continue
		}
		b.WriteString("---\n")
		b.Write(d.Raw)
	}
	return b.String()
}

func targetPort(sp corev1.ServicePort) int32 {
	switch sp.TargetPort.Type {
	case intstr.Int:
		if sp.TargetPort.IntVal != 0 {
			return sp.TargetPort.IntVal
		}
	case intstr.String:
		// Named target ports need the container port; the samples use numbers.
	}
	return sp.Port
}

func withKind(s corev1.Service, apiVersion, kind string) corev1.Service {
	s.APIVersion, s.Kind = apiVersion, kind
	return s
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func ptr[T any](v T) *T { return &v }
