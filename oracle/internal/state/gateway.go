package state

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"istio.io/istio/pilot/pkg/config/kube/gatewaycommon"
)

// GatewayNameLabel is the label Istio's gateway deployments carry and their Service selects
// (gateway.networking.k8s.io/gateway-name).
const GatewayNameLabel = "gateway.networking.k8s.io/gateway-name"

// AddGatewayDeployment adds what Istio's gateway deployment controller
// (pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go) and Kubernetes would add for a
// managed Gateway API Gateway: the Service named as Istio names it
// (gatewaycommon.GetDefaultName: "<gateway>-<class>"), one port per listener port, selecting the
// gateway's pods; one Ready pod at ip; and its EndpointSlice. istiod binds the Gateway to a proxy
// through that Service (model.InternalGatewayServiceAnnotation), so a gateway proxy needs it.
// Objects the state already holds (a Service of that name) are kept. It returns the pod's labels.
func AddGatewayDeployment(st *State, namespace, name, ip string) (map[string]string, error) {
	var gw *gatewayv1.Gateway
	for _, o := range st.Kubernetes {
		if g, ok := o.(*gatewayv1.Gateway); ok && g.Name == name && g.Namespace == namespace {
			gw = g
		}
	}
	if gw == nil {
		return nil, fmt.Errorf("no Gateway (gateway.networking.k8s.io) %s/%s in the state", namespace, name)
	}
	if !gatewaycommon.IsManaged(&gw.Spec) {
		return nil, fmt.Errorf("Gateway %s/%s names its own address (spec.addresses), so Istio deploys nothing for it; give the proxy's labels and ip instead", namespace, name)
	}
	svcName := gatewaycommon.GetDefaultName(gw.Name, &gw.Spec, false)
	labels := map[string]string{GatewayNameLabel: gw.Name, "istio.io/gateway-name": gw.Name}
	for _, o := range st.Kubernetes {
		if s, ok := o.(*corev1.Service); ok && s.Name == svcName && s.Namespace == namespace {
			return labels, nil
		}
	}
	seen := map[int32]bool{}
	var ports []corev1.ServicePort
	var epPorts []discoveryv1.EndpointPort
	for _, l := range gw.Spec.Listeners {
		p := int32(l.Port)
		if seen[p] {
			continue
		}
		seen[p] = true
		pname := fmt.Sprintf("%s-%d", strings.ToLower(string(l.Protocol)), p)
		ports = append(ports, corev1.ServicePort{Name: pname, Port: p, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(p)})
		n, port, tcp := pname, p, corev1.ProtocolTCP
		epPorts = append(epPorts, discoveryv1.EndpointPort{Name: &n, Port: &port, Protocol: &tcp})
	}
	created := metav1.NewTime(DefaultCreationTimestamp)
	svc := &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: svcName, Namespace: namespace, CreationTimestamp: created, Labels: map[string]string{GatewayNameLabel: gw.Name}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", Selector: map[string]string{GatewayNameLabel: gw.Name}, Ports: ports},
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: svcName + "-0", Namespace: namespace, CreationTimestamp: created, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "istio/proxyv2"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	ready := true
	slice := &discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{Name: svcName + "-oracle", Namespace: namespace, CreationTimestamp: created,
			Labels: map[string]string{discoveryv1.LabelServiceName: svcName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: namespace, Name: pod.Name}}},
		Ports: epPorts,
	}
	st.Kubernetes = append(st.Kubernetes, svc, pod, slice)
	st.Synthesized = append(st.Synthesized, "Service "+namespace+"/"+svcName, "Pod "+namespace+"/"+pod.Name, "EndpointSlice "+namespace+"/"+slice.Name)
	return labels, nil
}
