// Package envoy derives what an Envoy would do with one request, given the xDS istiod generated
// for it (listeners, route configurations, clusters, endpoints). It is meshlab's own reading of
// Envoy's data path, written from Envoy's source (each rule names the Envoy file it follows; the
// list is in oracle/README.md). Istio's simulation (pilot/pkg/simulation) answers the same
// question for listeners, filter chains, virtual hosts and path-only route matching; the oracle
// reports both, and flags where they differ.
//
// What is derived: listener (original-destination hand-off of the sidecar's virtual outbound
// listener, or the bound listener of a gateway), filter chain (Envoy's filter-chain-match order),
// virtual host (case-insensitive domain match, exact, then suffix and prefix wildcards longest
// first, then "*"), route (runtime fraction, headers, query parameters, then the path matcher,
// in order), and the route's action: clusters with weights, redirects (Location as Envoy builds
// it), direct responses, fault injection; then for each cluster whether CDS has it and how many
// hosts its load assignment has in which health state, giving the local reply Envoy would send:
// 404 NR, 503 NC, 503 UH, a fault abort (FI), or the upstream's answer.
package envoy
