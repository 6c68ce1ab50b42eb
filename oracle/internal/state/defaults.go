package state

import (
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ApplyDefaults sets the defaults the Kubernetes API server would have written into the objects
// istiod reads, where a manifest may leave them out (k8s.io/kubernetes pkg/apis/core/v1
// defaults.go, SetDefaults_Service and SetDefaults_ServicePort; pkg/apis/discovery/v1):
//   - Service: spec.type ClusterIP; each port's protocol TCP and targetPort = port;
//   - EndpointSlice: each port's protocol TCP.
//
// Cluster IPs are not allocated: a ClusterIP Service without spec.clusterIP is an error in
// Validate, because the state must say which address clients dial.
func ApplyDefaults(st *State) {
	for _, o := range st.Kubernetes {
		switch x := o.(type) {
		case *corev1.Service:
			if x.Spec.Type == "" {
				x.Spec.Type = corev1.ServiceTypeClusterIP
			}
			for i := range x.Spec.Ports {
				p := &x.Spec.Ports[i]
				if p.Protocol == "" {
					p.Protocol = corev1.ProtocolTCP
				}
				if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 && x.Spec.Type != corev1.ServiceTypeExternalName {
					p.TargetPort = intstr.FromInt32(p.Port)
				}
			}
			if x.Namespace == "" {
				x.Namespace = "default"
			}
		case *discoveryv1.EndpointSlice:
			for i := range x.Ports {
				if x.Ports[i].Protocol == nil {
					tcp := corev1.ProtocolTCP
					x.Ports[i].Protocol = &tcp
				}
			}
			if x.Namespace == "" {
				x.Namespace = "default"
			}
		case *corev1.Pod:
			if x.Namespace == "" {
				x.Namespace = "default"
			}
		}
	}
}

// Resolve answers what cluster DNS (CoreDNS's kubernetes plugin) would for a host asked from a
// pod in namespace ns: a Service's cluster IP, or for a headless Service the address of its first
// ready endpoint. An IP address resolves to itself. Other names are an error: the caller must say
// which address the client dials.
func Resolve(st *State, host, ns string) (string, error) {
	host = strings.TrimSuffix(host, ".")
	if ip := net.ParseIP(host); ip != nil {
		return host, nil
	}
	name, svcNS := "", ""
	parts := strings.Split(strings.ToLower(host), ".")
	switch {
	case len(parts) == 1:
		name, svcNS = parts[0], ns
	case len(parts) == 2:
		name, svcNS = parts[0], parts[1]
	case len(parts) == 3 && parts[2] == "svc":
		name, svcNS = parts[0], parts[1]
	case len(parts) == 5 && parts[2] == "svc" && parts[3]+"."+parts[4] == DomainSuffix:
		name, svcNS = parts[0], parts[1]
	default:
		return "", fmt.Errorf("%q is not a Kubernetes Service name this state can resolve", host)
	}
	for _, o := range st.Kubernetes {
		s, ok := o.(*corev1.Service)
		if !ok || s.Name != name || s.Namespace != svcNS {
			continue
		}
		switch {
		case s.Spec.Type == corev1.ServiceTypeExternalName:
			return "", fmt.Errorf("Service %s/%s is ExternalName (a CNAME to %q)", svcNS, name, s.Spec.ExternalName)
		case s.Spec.ClusterIP == corev1.ClusterIPNone:
			for _, o2 := range st.Kubernetes {
				es, ok := o2.(*discoveryv1.EndpointSlice)
				if !ok || es.Namespace != svcNS || es.Labels[discoveryv1.LabelServiceName] != name {
					continue
				}
				for _, e := range es.Endpoints {
					if (e.Conditions.Ready == nil || *e.Conditions.Ready) && len(e.Addresses) > 0 {
						return e.Addresses[0], nil
					}
				}
			}
			return "", fmt.Errorf("headless Service %s/%s has no ready endpoint to resolve to", svcNS, name)
		case s.Spec.ClusterIP == "":
			return "", fmt.Errorf("Service %s/%s has no spec.clusterIP", svcNS, name)
		default:
			return s.Spec.ClusterIP, nil
		}
	}
	if len(parts) == 2 {
		// "reviews.prod" may also be a search-path lookup of a real domain; only Services resolve here.
		return "", fmt.Errorf("no Service %s in namespace %s", name, svcNS)
	}
	return "", fmt.Errorf("no Service %s in namespace %s", name, svcNS)
}
