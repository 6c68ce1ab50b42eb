package istiod

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"
	"unsafe"

	"istio.io/istio/pilot/pkg/config/kube/gateway"
	"istio.io/istio/pilot/pkg/status"
	"istio.io/istio/pkg/config/schema/gvk"
)

// ObjectStatus is the status istiod's Gateway API controller computed for one object: what it
// would write to the object's `status` in a cluster (Gateway, HTTPRoute, GatewayClass, ...).
type ObjectStatus struct {
	Kind      string          `json:"kind"`
	Namespace string          `json:"namespace,omitempty"`
	Name      string          `json:"name"`
	Status    json.RawMessage `json:"status"`
}

// statusQueue is a status.Queue that keeps the last status enqueued per object, in place of the
// status manager that would write it to the API server (Istio's own tests do the same:
// pilot/pkg/config/kube/gateway/conversion_test.go, TestStatusQueue).
type statusQueue struct {
	mu    sync.Mutex
	state map[status.Resource]any
}

func (q *statusQueue) EnqueueStatusUpdateResource(context any, target status.Resource) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.state[target] = context
}

// GatewayAPIStatus returns the status istiod's Gateway API controller
// (pilot/pkg/config/kube/gateway.Controller) computes for every Gateway API object of the state,
// sorted by kind (GatewayClass, Gateway, HTTPRoute, GRPCRoute, ...), namespace and name.
//
// The controller keeps its status collections in an unexported field and hands them to a writer
// only under leader election (Controller.SetStatusWrite, which gives no way to wait for the
// result); Istio's own tests reach the field from inside the package. The oracle reaches it by
// reflection and waits until every status collection has synced, so the answer is complete.
//
// Every condition's lastTransitionTime (the moment istiod computed it) is replaced by
// transitionTime, so that the same state always gives the same answer.
func (s *Server) GatewayAPIStatus(timeout time.Duration, transitionTime time.Time) ([]ObjectStatus, error) {
	ctrl, ok := s.fake.Discovery.Env.GatewayAPIController.(*gateway.Controller)
	if !ok || ctrl == nil {
		return nil, fmt.Errorf("the harness has no Gateway API controller")
	}
	field := reflect.ValueOf(ctrl).Elem().FieldByName("status")
	if !field.IsValid() || field.Type() != reflect.TypeOf((*status.StatusCollections)(nil)) {
		return nil, fmt.Errorf("istio.io/istio changed: gateway.Controller has no field status *status.StatusCollections")
	}
	collections := reflect.NewAt(field.Type(), unsafe.Pointer(field.UnsafeAddr())).Elem().Interface().(*status.StatusCollections)
	q := &statusQueue{state: map[status.Resource]any{}}
	stop := make(chan struct{})
	defer close(stop)
	synced := make(chan struct{})
	syncers := collections.SetQueue(q)
	defer collections.UnsetQueue()
	go func() {
		for _, sy := range syncers {
			sy.WaitUntilSynced(stop)
		}
		close(synced)
	}()
	select {
	case <-synced:
	case <-time.After(timeout):
		return nil, fmt.Errorf("istiod's Gateway API status did not sync within %v", timeout)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]ObjectStatus, 0, len(q.state))
	for res, st := range q.state {
		k, ok := gvk.FromGVR(res.GroupVersionResource)
		if !ok {
			continue
		}
		raw, err := stableStatus(st, transitionTime)
		if err != nil {
			return nil, fmt.Errorf("status of %s %s/%s: %v", k.Kind, res.Namespace, res.Name, err)
		}
		out = append(out, ObjectStatus{Kind: k.Kind, Namespace: res.Namespace, Name: res.Name, Status: raw})
	}
	order := map[string]int{gvk.GatewayClass.Kind: 0, gvk.KubernetesGateway.Kind: 1, gvk.HTTPRoute.Kind: 2, gvk.GRPCRoute.Kind: 3}
	rank := func(kind string) int {
		if r, ok := order[kind]; ok {
			return r
		}
		return len(order)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if rank(a.Kind) != rank(b.Kind) {
			return rank(a.Kind) < rank(b.Kind)
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

// stableStatus marshals a status with every "lastTransitionTime" set to at.
func stableStatus(st any, at time.Time) (json.RawMessage, error) {
	raw, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	stamp := at.UTC().Format(time.RFC3339)
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, c := range t {
				if k == "lastTransitionTime" {
					t[k] = stamp
					continue
				}
				walk(c)
			}
		case []any:
			for _, c := range t {
				walk(c)
			}
		}
	}
	walk(tree)
	return json.Marshal(tree)
}
