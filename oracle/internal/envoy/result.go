package envoy

// Result is the derived handling of one request. Field names follow Envoy's config and access-log
// vocabulary (listener, filter chain, route configuration, virtual host, route, cluster, response
// flags, response code details).
type Result struct {
	Listener       string          `json:"listener"`
	FilterChain    string          `json:"filterChain"`
	RouteConfig    string          `json:"routeConfig,omitempty"`
	VirtualHost    string          `json:"virtualHost,omitempty"`
	Route          string          `json:"route,omitempty"`
	RouteIndex     int             `json:"routeIndex"`       // position of the route in its virtual host, -1 if none
	Action         string          `json:"action,omitempty"` // "route", "redirect", "direct_response", "tcp_proxy"
	Clusters       []ClusterTarget `json:"clusters,omitempty"`
	Redirect       *Redirect       `json:"redirect,omitempty"`
	DirectResponse *DirectResponse `json:"directResponse,omitempty"`
	Fault          *Fault          `json:"fault,omitempty"`
	Rewrite        *Rewrite        `json:"rewrite,omitempty"`
	Timeout        string          `json:"timeout,omitempty"` // route timeout, "0s" = none
	Retry          *Retry          `json:"retry,omitempty"`
	Mirrors        []string        `json:"mirrors,omitempty"`
	// Outcome is the answer the client gets when it is the same whichever weighted cluster is
	// picked and no fault applies partially; otherwise nil and Outcomes lists the possibilities.
	Outcome  *Outcome          `json:"outcome"`
	Outcomes []WeightedOutcome `json:"outcomes"`
	// Steps explain the derivation, one line per decision, for humans.
	Steps []string `json:"steps"`
	// Notes are parts of the request or config the derivation does not model.
	Notes []string `json:"notes,omitempty"`
}

// ClusterTarget is a cluster a route or TCP proxy may send to.
type ClusterTarget struct {
	Name   string `json:"name"`
	Weight uint32 `json:"weight"` // relative weight; 100 (of 100) for a single cluster
	// Exists: CDS has the cluster. A route to a missing cluster gets 503 NC.
	Exists bool `json:"exists"`
	// Type is the cluster's discovery type: EDS, STATIC, STRICT_DNS, LOGICAL_DNS, ORIGINAL_DST.
	Type string `json:"type,omitempty"`
	// Endpoints counts the hosts of the cluster's load assignment (EDS, or inline for STATIC/DNS
	// clusters) by health status; nil when the cluster has no load assignment to count
	// (ORIGINAL_DST) or does not exist.
	Endpoints *EndpointCounts `json:"endpoints,omitempty"`
	Outcome   Outcome         `json:"outcome"`
}

// EndpointCounts counts a load assignment's hosts by Envoy health status.
type EndpointCounts struct {
	Total     int `json:"total"`
	Healthy   int `json:"healthy"`   // HEALTHY or UNKNOWN (Envoy routes to both)
	Degraded  int `json:"degraded"`  // DEGRADED
	Unhealthy int `json:"unhealthy"` // UNHEALTHY, DRAINING, TIMEOUT
	// PanicThresholdPercent is the cluster's healthy_panic_threshold (Envoy's default 50).
	PanicThresholdPercent float64 `json:"panicThresholdPercent"`
}

// Outcome is what the client sees.
type Outcome struct {
	// Kind: "upstream" (the request reaches an upstream host; its answer is the upstream's),
	// "local_reply" (Envoy answers itself: Status, Flags, Details), "connection_refused",
	// "connection_reset" (Envoy closes the connection), "passthrough" (forwarded to the original
	// destination address unchanged).
	Kind    string `json:"kind"`
	Status  int    `json:"status,omitempty"`  // HTTP status of a local reply
	Flags   string `json:"flags"`             // Envoy response flags (%RESPONSE_FLAGS%), "-" for none
	Details string `json:"details,omitempty"` // %RESPONSE_CODE_DETAILS%
	Cluster string `json:"cluster,omitempty"` // the cluster an upstream answer comes through
	// Location is the Location header of a redirect.
	Location string `json:"location,omitempty"`
	Body     string `json:"body,omitempty"` // body of a direct response
}

// WeightedOutcome is one possible outcome and its share of requests, in percent.
type WeightedOutcome struct {
	Percent float64 `json:"percent"`
	Outcome Outcome `json:"outcome"`
}

// Redirect is a route's redirect action, resolved for this request.
type Redirect struct {
	Status   int    `json:"status"`
	Location string `json:"location"`
}

// DirectResponse is a route's direct_response action.
type DirectResponse struct {
	Status int    `json:"status"`
	Body   string `json:"body,omitempty"`
}

// Fault is the fault filter's configuration that applies to the route.
type Fault struct {
	AbortStatus     int     `json:"abortStatus,omitempty"`
	AbortGrpcStatus int     `json:"abortGrpcStatus,omitempty"`
	AbortPercent    float64 `json:"abortPercent,omitempty"`
	AbortFromHeader bool    `json:"abortFromHeader,omitempty"`
	DelaySeconds    float64 `json:"delaySeconds,omitempty"`
	DelayPercent    float64 `json:"delayPercent,omitempty"`
	DelayFromHeader bool    `json:"delayFromHeader,omitempty"`
}

// Rewrite is what the route changes in the request before forwarding it.
type Rewrite struct {
	Authority string `json:"authority,omitempty"` // host_rewrite_literal
	Path      string `json:"path,omitempty"`      // the path after prefix_rewrite or regex_rewrite
}

// Retry is the route's retry policy.
type Retry struct {
	RetryOn       string `json:"retryOn"`
	NumRetries    uint32 `json:"numRetries"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
}
