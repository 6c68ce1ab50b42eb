package envoy

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Config is one proxy's xDS, as istiod generated it.
type Config struct {
	Listeners []*listener.Listener
	Routes    []*route.RouteConfiguration
	Clusters  []*cluster.Cluster
	Endpoints []*endpoint.ClusterLoadAssignment
}

const (
	hcmName   = "envoy.filters.network.http_connection_manager"
	tcpName   = "envoy.filters.network.tcp_proxy"
	faultName = "envoy.filters.http.fault"
)

type deriver struct {
	cfg      Config
	req      Request
	res      *Result
	ncStatus int // status of the local reply for a missing cluster (route action's setting)
}

// Derive works out what Envoy does with the request. The error is for requests it cannot
// evaluate (a bad request, or config the derivation cannot read); an unmatched request is a
// Result with its outcome, not an error.
func Derive(cfg Config, req Request) (*Result, error) {
	req, err := req.Normalize()
	if err != nil {
		return nil, err
	}
	if req.Mode == "" {
		req.Mode = Outbound
	}
	// Istio's sidecars speak Istio ALPN values over mTLS (pilot/pkg/simulation uses the same).
	if req.ALPN == "" {
		switch req.TLS {
		case "mtls":
			req.ALPN = map[string]string{"http": "istio-http/1.1", "http2": "istio-h2"}[req.Protocol]
			if req.ALPN == "" {
				req.ALPN = "istio"
			}
		case "tls":
			req.ALPN = map[string]string{"http": "http/1.1", "http2": "h2"}[req.Protocol]
		}
	}
	if req.SNI == "" && req.TLS == "tls" {
		req.SNI, _ = splitHostPort(req.Authority)
	}
	d := &deriver{cfg: cfg, req: req, res: &Result{RouteIndex: -1}, ncStatus: 503}
	d.run()
	return d.res, nil
}

func (d *deriver) step(format string, args ...any) {
	d.res.Steps = append(d.res.Steps, fmt.Sprintf(format, args...))
}

func (d *deriver) note(format string, args ...any) {
	d.res.Notes = append(d.res.Notes, fmt.Sprintf(format, args...))
}

func (d *deriver) final(o Outcome) {
	d.res.Outcome = &o
	d.res.Outcomes = []WeightedOutcome{{Percent: 100, Outcome: o}}
}

func (d *deriver) run() {
	l, why := matchListener(d.cfg.Listeners, d.req)
	d.step("listener: %s", why)
	if l == nil {
		kind := "connection_refused"
		if d.req.Mode != Gateway {
			kind = "connection_reset"
		}
		d.final(Outcome{Kind: kind, Flags: "-"})
		return
	}
	d.res.Listener = l.GetName()
	det := detect(l, d.req)
	fc, notes, err := matchFilterChain(l, d.req, det)
	d.res.Notes = append(d.res.Notes, notes...)
	if err != nil {
		d.step("filter chain: %v", err)
		d.final(Outcome{Kind: "connection_reset", Flags: "-", Details: "filter_chain_not_found"})
		return
	}
	if fc == nil {
		// Envoy closes a connection no filter chain matches (stat no_filter_chain_match).
		d.step("filter chain: none of listener %s matches (transport %s, ALPN %q, SNI %q): Envoy closes the connection",
			l.GetName(), det.transport, det.alpn, det.sni)
		d.final(Outcome{Kind: "connection_reset", Flags: "NR", Details: "filter_chain_not_found"})
		return
	}
	d.res.FilterChain = fc.GetName()
	d.step("filter chain: %q (transport %s, ALPN %q, SNI %q)", fc.GetName(), det.transport, det.alpn, det.sni)
	if fc.GetTransportSocket() != nil && d.req.TLS == "plaintext" {
		d.step("the filter chain terminates TLS and the client speaks plaintext: the handshake fails")
		d.final(Outcome{Kind: "connection_reset", Flags: "-", Details: "tls_handshake_failed"})
		return
	}
	for _, f := range fc.GetFilters() {
		switch f.GetName() {
		case hcmName:
			var h hcm.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
				d.note("cannot read the HTTP connection manager: %v", err)
				return
			}
			if d.req.Protocol == "tcp" || (d.req.TLS != "plaintext" && fc.GetTransportSocket() == nil) {
				d.step("an HTTP connection manager receives bytes that are not plaintext HTTP: it answers 400 and closes")
				d.final(Outcome{Kind: "connection_reset", Flags: "-", Details: "codec_error"})
				return
			}
			d.http(&h)
			return
		case tcpName:
			var t tcpproxy.TcpProxy
			if err := f.GetTypedConfig().UnmarshalTo(&t); err != nil {
				d.note("cannot read the TCP proxy: %v", err)
				return
			}
			d.tcp(&t)
			return
		}
	}
	d.note("filter chain %q has neither an HTTP connection manager nor a TCP proxy", fc.GetName())
}

func (d *deriver) tcp(t *tcpproxy.TcpProxy) {
	d.res.Action = "tcp_proxy"
	var targets []ClusterTarget
	switch c := t.GetClusterSpecifier().(type) {
	case *tcpproxy.TcpProxy_Cluster:
		targets = []ClusterTarget{{Name: c.Cluster, Weight: 100}}
	case *tcpproxy.TcpProxy_WeightedClusters:
		for _, w := range c.WeightedClusters.GetClusters() {
			targets = append(targets, ClusterTarget{Name: w.GetName(), Weight: w.GetWeight()})
		}
	}
	d.step("TCP proxy to %s", names(targets))
	d.targets(targets, false, nil)
}

// http follows the connection manager and router for one request.
func (d *deriver) http(h *hcm.HttpConnectionManager) {
	authority := d.req.Authority
	// strip_port_mode (source/common/http/conn_manager_utility.cc, maybeNormalizeHost).
	if h.GetStripAnyHostPort() {
		host, _ := splitHostPort(authority)
		if host != authority {
			d.step("strip_any_host_port: authority %q becomes %q", authority, host)
		}
		authority = host
	} else if h.GetStripMatchingHostPort() {
		host, port := splitHostPort(authority)
		if port == fmt.Sprint(d.req.Port) {
			d.step("strip_matching_host_port: authority %q becomes %q", authority, host)
			authority = host
		}
	}
	path := d.req.Path
	normalize := h.GetNormalizePath().GetValue()
	if np := normalizePath(path, normalize, h.GetMergeSlashes()); np != path {
		d.step("path normalization (normalize_path=%v, merge_slashes=%v): %q becomes %q", normalize, h.GetMergeSlashes(), path, np)
		path = np
	}
	headers := d.req.headerMap(authority, path)
	// An edge connection manager (use_remote_address, Istio's gateways) overwrites
	// x-forwarded-proto with the connection's scheme (conn_manager_utility.cc).
	if h.GetUseRemoteAddress().GetValue() {
		headers["x-forwarded-proto"] = d.req.Scheme
	}

	var rc *route.RouteConfiguration
	switch s := h.GetRouteSpecifier().(type) {
	case *hcm.HttpConnectionManager_RouteConfig:
		rc = s.RouteConfig
		d.res.RouteConfig = rc.GetName()
	case *hcm.HttpConnectionManager_Rds:
		d.res.RouteConfig = s.Rds.GetRouteConfigName()
		for _, r := range d.cfg.Routes {
			if r.GetName() == s.Rds.GetRouteConfigName() {
				rc = r
			}
		}
		if rc == nil {
			d.step("RDS route configuration %q is not in the generated RDS", s.Rds.GetRouteConfigName())
			d.note("Envoy would keep the listener warming until RDS sends %q", s.Rds.GetRouteConfigName())
			d.final(Outcome{Kind: "local_reply", Status: 404, Flags: "NR", Details: "route_not_found"})
			return
		}
	default:
		d.note("route specifier %T is not modelled", s)
		return
	}
	faultFilter := false
	for _, f := range h.GetHttpFilters() {
		if f.GetName() == faultName {
			faultFilter = true
		}
	}

	vh := findVirtualHost(rc, authority)
	if vh == nil {
		d.step("virtual host: no domain of route configuration %q matches %q", rc.GetName(), authority)
		d.final(Outcome{Kind: "local_reply", Status: 404, Flags: "NR", Details: "route_not_found"})
		return
	}
	d.res.VirtualHost = vh.GetName()
	d.step("virtual host: %q (domains %s) for authority %q", vh.GetName(), strings.Join(vh.GetDomains(), ", "), authority)
	if vh.GetRequireTls() == route.VirtualHost_ALL && d.req.Scheme != "https" {
		loc := "https://" + authority + path
		d.step("require_tls ALL on a plaintext request: 301 to %s", loc)
		d.res.Action = "redirect"
		d.res.Redirect = &Redirect{Status: 301, Location: loc}
		d.final(Outcome{Kind: "local_reply", Status: 301, Flags: "-", Details: "direct_response", Location: loc})
		return
	}

	var r *route.Route
	var matched string
	for i, cand := range vh.GetRoutes() {
		ok, m, why := d.matchRoute(cand, headers, path)
		if ok {
			r, matched = cand, m
			d.res.RouteIndex = i
			break
		}
		if why != "" {
			d.step("route %d %q does not match: %s", i, cand.GetName(), why)
		}
	}
	if r == nil {
		d.step("no route of virtual host %q matches", vh.GetName())
		d.final(Outcome{Kind: "local_reply", Status: 404, Flags: "NR", Details: "route_not_found"})
		return
	}
	d.res.Route = r.GetName()
	d.step("route %d %q matches (%s)", d.res.RouteIndex, r.GetName(), describeMatch(r.GetMatch()))

	var fault *Fault
	if faultFilter {
		fault = d.fault(rc, vh, r)
	}

	switch a := r.GetAction().(type) {
	case *route.Route_Redirect:
		d.res.Action = "redirect"
		red := d.redirect(a.Redirect, headers, path, matched, r.GetMatch())
		d.res.Redirect = red
		d.outcomeWithFault(fault, []WeightedOutcome{{Percent: 100, Outcome: Outcome{Kind: "local_reply", Status: red.Status, Flags: "-", Details: "direct_response", Location: red.Location}}})
	case *route.Route_DirectResponse:
		d.res.Action = "direct_response"
		body := a.DirectResponse.GetBody().GetInlineString()
		if body == "" && len(a.DirectResponse.GetBody().GetInlineBytes()) > 0 {
			body = string(a.DirectResponse.GetBody().GetInlineBytes())
		}
		d.res.DirectResponse = &DirectResponse{Status: int(a.DirectResponse.GetStatus()), Body: body}
		d.step("direct response %d", a.DirectResponse.GetStatus())
		d.outcomeWithFault(fault, []WeightedOutcome{{Percent: 100, Outcome: Outcome{Kind: "local_reply", Status: int(a.DirectResponse.GetStatus()), Flags: "-", Details: "direct_response", Body: body}}})
	case *route.Route_Route:
		d.res.Action = "route"
		ra := a.Route
		var targets []ClusterTarget
		switch c := ra.GetClusterSpecifier().(type) {
		case *route.RouteAction_Cluster:
			targets = []ClusterTarget{{Name: c.Cluster, Weight: 100}}
		case *route.RouteAction_WeightedClusters:
			for _, w := range c.WeightedClusters.GetClusters() {
				targets = append(targets, ClusterTarget{Name: w.GetName(), Weight: w.GetWeight().GetValue()})
			}
		default:
			d.note("cluster specifier %T is not modelled", c)
		}
		d.step("route action: %s", names(targets))
		d.routeDetails(ra, path, matched, r.GetMatch())
		// cluster_not_found_response_code (SERVICE_UNAVAILABLE by default; Istio sets
		// INTERNAL_SERVER_ERROR for Gateway API routes): the status of the NC local reply.
		d.ncStatus = map[route.RouteAction_ClusterNotFoundResponseCode]int{
			route.RouteAction_SERVICE_UNAVAILABLE:   503,
			route.RouteAction_NOT_FOUND:             404,
			route.RouteAction_INTERNAL_SERVER_ERROR: 500,
		}[ra.GetClusterNotFoundResponseCode()]
		d.targets(targets, true, fault)
	default:
		d.note("route action %T is not modelled", a)
	}
}

func names(ts []ClusterTarget) string {
	var out []string
	for _, t := range ts {
		if len(ts) > 1 {
			out = append(out, fmt.Sprintf("%s (weight %d)", t.Name, t.Weight))
		} else {
			out = append(out, t.Name)
		}
	}
	return strings.Join(out, ", ")
}

// findVirtualHost is Envoy's RouteMatcher::findVirtualHost (source/common/router/config_impl.cc):
// the authority, lower-cased (and without port when ignore_port_in_host_matching), is looked up
// among exact domains, then suffix wildcards ("*.example.com", longest first; the wildcard never
// matches an empty label), then prefix wildcards ("example.*", longest first), then "*".
func findVirtualHost(rc *route.RouteConfiguration, authority string) *route.VirtualHost {
	host := authority
	if rc.GetIgnorePortInHostMatching() {
		host, _ = splitHostPort(host)
	}
	host = strings.ToLower(host)
	var def *route.VirtualHost
	type wild struct {
		n  int
		vh *route.VirtualHost
	}
	var suffixes, prefixes []wild
	for _, vh := range rc.GetVirtualHosts() {
		for _, dom := range vh.GetDomains() {
			dom = strings.ToLower(dom)
			switch {
			case dom == "*":
				if def == nil {
					def = vh
				}
			case strings.HasPrefix(dom, "*"):
				suf := dom[1:]
				if len(host) > len(suf) && strings.HasSuffix(host, suf) {
					suffixes = append(suffixes, wild{len(suf), vh})
				}
			case strings.HasSuffix(dom, "*"):
				pre := dom[:len(dom)-1]
				if len(host) > len(pre) && strings.HasPrefix(host, pre) {
					prefixes = append(prefixes, wild{len(pre), vh})
				}
			default:
				if dom == host {
					return vh
				}
			}
		}
	}
	for _, set := range [][]wild{suffixes, prefixes} {
		if len(set) > 0 {
			sort.SliceStable(set, func(i, j int) bool { return set[i].n > set[j].n })
			return set[0].vh
		}
	}
	return def
}

// matchRoute is RouteEntryImplBase::matchRoute followed by the path matcher
// (source/common/router/config_impl.cc): runtime fraction, gRPC, headers, query parameters,
// TLS context, dynamic metadata and filter state must all match; then the path.
func (d *deriver) matchRoute(r *route.Route, h headerMap, path string) (bool, string, string) {
	m := r.GetMatch()
	if rf := m.GetRuntimeFraction(); rf != nil {
		p := percentOf(rf.GetDefaultValue())
		if p <= 0 {
			return false, "", "runtime_fraction default is 0%"
		}
		if p < 100 {
			d.note("route %q matches only %.4g%% of requests (runtime_fraction); treated as matching", r.GetName(), p)
		}
	}
	if m.GetGrpc() != nil {
		if ct, _ := h.get("content-type"); !strings.HasPrefix(ct, "application/grpc") {
			return false, "", "grpc match: not a gRPC request"
		}
	}
	for _, hm := range m.GetHeaders() {
		ok, err := headerMatch(hm, h)
		if err != nil {
			d.note("route %q: %v; treated as not matching", r.GetName(), err)
			return false, "", err.Error()
		}
		if !ok {
			return false, "", fmt.Sprintf("header %s", describeHeader(hm))
		}
	}
	if len(m.GetQueryParameters()) > 0 {
		q := queryParams(path)
		for _, qm := range m.GetQueryParameters() {
			ok, err := queryMatch(qm, q)
			if err != nil {
				d.note("route %q: %v; treated as not matching", r.GetName(), err)
				return false, "", err.Error()
			}
			if !ok {
				return false, "", fmt.Sprintf("query parameter %q", qm.GetName())
			}
		}
	}
	if tc := m.GetTlsContext(); tc != nil {
		mtls := d.req.TLS == "mtls"
		if tc.GetPresented() != nil && tc.GetPresented().GetValue() != mtls {
			return false, "", "tls_context.presented"
		}
		if tc.GetValidated() != nil && tc.GetValidated().GetValue() != mtls {
			return false, "", "tls_context.validated"
		}
	}
	if len(m.GetDynamicMetadata()) > 0 || len(m.GetFilterState()) > 0 {
		d.note("route %q matches on dynamic metadata or filter state, which is not modelled; treated as not matching", r.GetName())
		return false, "", "dynamic metadata / filter state"
	}
	ok, matched, err := pathMatch(m, path)
	if err != nil {
		d.note("route %q: %v; treated as not matching", r.GetName(), err)
		return false, "", err.Error()
	}
	if !ok {
		return false, "", "path " + describeMatch(m)
	}
	return true, matched, ""
}

func describeMatch(m *route.RouteMatch) string {
	var parts []string
	switch ps := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		parts = append(parts, fmt.Sprintf("prefix %q", ps.Prefix))
	case *route.RouteMatch_Path:
		parts = append(parts, fmt.Sprintf("path %q", ps.Path))
	case *route.RouteMatch_SafeRegex:
		parts = append(parts, fmt.Sprintf("regex %q", ps.SafeRegex.GetRegex()))
	case *route.RouteMatch_PathSeparatedPrefix:
		parts = append(parts, fmt.Sprintf("path_separated_prefix %q", ps.PathSeparatedPrefix))
	}
	if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
		parts = append(parts, "case-insensitive")
	}
	for _, h := range m.GetHeaders() {
		parts = append(parts, "header "+describeHeader(h))
	}
	for _, q := range m.GetQueryParameters() {
		parts = append(parts, fmt.Sprintf("query %q", q.GetName()))
	}
	return strings.Join(parts, ", ")
}

func describeHeader(h *route.HeaderMatcher) string {
	s := h.GetName()
	switch x := h.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_StringMatch:
		switch p := x.StringMatch.GetMatchPattern().(type) {
		case *matcher.StringMatcher_Exact:
			s += fmt.Sprintf(" exact %q", p.Exact)
		case *matcher.StringMatcher_Prefix:
			s += fmt.Sprintf(" prefix %q", p.Prefix)
		case *matcher.StringMatcher_Suffix:
			s += fmt.Sprintf(" suffix %q", p.Suffix)
		case *matcher.StringMatcher_Contains:
			s += fmt.Sprintf(" contains %q", p.Contains)
		case *matcher.StringMatcher_SafeRegex:
			s += fmt.Sprintf(" regex %q", p.SafeRegex.GetRegex())
		}
	case *route.HeaderMatcher_PresentMatch:
		s += fmt.Sprintf(" present=%v", x.PresentMatch)
	default:
		s += " " + strings.TrimSpace(fmt.Sprint(x))
	}
	if h.GetInvertMatch() {
		s += " (inverted)"
	}
	return s
}

func percentOf(fp *typev3.FractionalPercent) float64 {
	if fp == nil {
		return 0
	}
	den := 100.0
	switch fp.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10000
	case typev3.FractionalPercent_MILLION:
		den = 1000000
	}
	return float64(fp.GetNumerator()) * 100 / den
}

func duration(p *durationpb.Duration) string {
	if p == nil {
		return ""
	}
	return p.AsDuration().String()
}

// routeDetails records rewrites, timeout, retries and mirrors of a route action.
func (d *deriver) routeDetails(ra *route.RouteAction, path, matched string, m *route.RouteMatch) {
	rw := &Rewrite{}
	if hr := ra.GetHostRewriteLiteral(); hr != "" {
		rw.Authority = hr
	}
	if pr := ra.GetPrefixRewrite(); pr != "" {
		rw.Path = pr + path[len(matched):]
	} else if rr := ra.GetRegexRewrite(); rr != nil {
		if re, err := regexp.Compile(rr.GetPattern().GetRegex()); err == nil {
			rw.Path = re.ReplaceAllString(pathOnly(path), re2Substitution(rr.GetSubstitution())) + path[len(pathOnly(path)):]
		}
	}
	if rw.Authority != "" || rw.Path != "" {
		d.res.Rewrite = rw
	}
	if ra.GetTimeout() != nil {
		d.res.Timeout = duration(ra.GetTimeout())
	}
	if rp := ra.GetRetryPolicy(); rp != nil {
		n := uint32(1)
		if rp.GetNumRetries() != nil {
			n = rp.GetNumRetries().GetValue()
		}
		d.res.Retry = &Retry{RetryOn: rp.GetRetryOn(), NumRetries: n, PerTryTimeout: duration(rp.GetPerTryTimeout())}
	}
	for _, mp := range ra.GetRequestMirrorPolicies() {
		d.res.Mirrors = append(d.res.Mirrors, mp.GetCluster())
	}
}

// re2Substitution turns RE2's \1 references into Go's ${1}.
func re2Substitution(s string) string {
	return regexp.MustCompile(`\\(\d)`).ReplaceAllString(s, `$${$1}`)
}

// redirect resolves a redirect action for this request (Http::Utility::newUri in
// source/common/http/utility.cc; prefix and regex rewrites of the path first, as the router does).
func (d *deriver) redirect(ra *route.RedirectAction, h headerMap, path, matched string, m *route.RouteMatch) *Redirect {
	status := map[route.RedirectAction_RedirectResponseCode]int{
		route.RedirectAction_MOVED_PERMANENTLY:  301,
		route.RedirectAction_FOUND:              302,
		route.RedirectAction_SEE_OTHER:          303,
		route.RedirectAction_TEMPORARY_REDIRECT: 307,
		route.RedirectAction_PERMANENT_REDIRECT: 308,
	}[ra.GetResponseCode()]
	// Path rewrites of a redirect (RouteEntryImplBase::getPathRewrite for redirects).
	if pr := ra.GetPrefixRewrite(); pr != "" {
		path = pr + path[len(matched):]
	} else if rr := ra.GetRegexRewrite(); rr != nil {
		if re, err := regexp.Compile(rr.GetPattern().GetRegex()); err == nil {
			just := pathOnly(path)
			path = re.ReplaceAllString(just, re2Substitution(rr.GetSubstitution())) + path[len(just):]
		}
	}
	scheme := h[":scheme"]
	if s := ra.GetSchemeRedirect(); s != "" {
		scheme = s
	} else if ra.GetHttpsRedirect() {
		scheme = "https"
	}
	port := ""
	if ra.GetPortRedirect() != 0 {
		port = fmt.Sprintf(":%d", ra.GetPortRedirect())
	}
	host := ra.GetHostRedirect()
	if host == "" {
		// processRequestHost: drop the request's port when a port is given, or when the scheme
		// changes and the port is the old scheme's default (compared with x-forwarded-proto).
		reqHost := h[":authority"]
		hname, hport := splitHostPort(reqHost)
		host = reqHost
		if hport != "" {
			proto := h["x-forwarded-proto"]
			remove := port != ""
			if scheme != proto {
				remove = remove || (strings.EqualFold(proto, "https") && hport == "443") || (strings.EqualFold(proto, "http") && hport == "80")
			}
			if remove {
				host = hname
			}
		}
	}
	finalPath := path
	pathRedirectHasQuery := strings.Contains(ra.GetPathRedirect(), "?")
	if pr := ra.GetPathRedirect(); pr != "" {
		if pathRedirectHasQuery {
			finalPath = pr
		} else if i := strings.IndexByte(path, '?'); i >= 0 {
			finalPath = pr + path[i:]
		} else {
			finalPath = pr
		}
	}
	if !strings.HasPrefix(finalPath, "/") {
		finalPath = "/" + finalPath
	}
	if !pathRedirectHasQuery && ra.GetStripQuery() {
		finalPath = pathOnly(finalPath)
	}
	loc := fmt.Sprintf("%s://%s%s%s", scheme, host, port, finalPath)
	d.step("redirect %d to %s", status, loc)
	return &Redirect{Status: status, Location: loc}
}

// fault reads the fault filter's per-route configuration: the most specific of route, virtual
// host and route configuration typed_per_filter_config (mostSpecificPerFilterConfig).
func (d *deriver) fault(rc *route.RouteConfiguration, vh *route.VirtualHost, r *route.Route) *Fault {
	var raw *anypb.Any
	for _, m := range []map[string]*anypb.Any{r.GetTypedPerFilterConfig(), vh.GetTypedPerFilterConfig(), rc.GetTypedPerFilterConfig()} {
		if a, ok := m[faultName]; ok {
			raw = a
			break
		}
	}
	if raw == nil {
		return nil
	}
	var hf faultv3.HTTPFault
	if err := raw.UnmarshalTo(&hf); err != nil {
		d.note("cannot read the route's fault configuration: %v", err)
		return nil
	}
	if len(hf.GetHeaders()) > 0 || len(hf.GetDownstreamNodes()) > 0 || hf.GetUpstreamCluster() != "" {
		d.note("the fault applies only to some requests (headers, downstream nodes or upstream cluster), which is not modelled")
	}
	f := &Fault{}
	if a := hf.GetAbort(); a != nil {
		f.AbortPercent = percentOf(a.GetPercentage())
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			f.AbortStatus = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			f.AbortGrpcStatus = int(e.GrpcStatus)
		case *faultv3.FaultAbort_HeaderAbort_:
			f.AbortFromHeader = true
		}
	}
	if dl := hf.GetDelay(); dl != nil {
		f.DelayPercent = percentOf(dl.GetPercentage())
		if fd := dl.GetFixedDelay(); fd != nil {
			f.DelaySeconds = fd.AsDuration().Seconds()
		} else {
			f.DelayFromHeader = true
		}
	}
	d.res.Fault = f
	d.step("fault filter: abort %d at %.4g%%, delay %.4gs at %.4g%%", f.AbortStatus, f.AbortPercent, f.DelaySeconds, f.DelayPercent)
	return f
}

// outcomeWithFault combines the route's outcomes with the fault filter, which runs before the
// router: an abort answers with its status and flag FI (details fault_filter_abort); a delay adds
// flag DI to whatever follows.
func (d *deriver) outcomeWithFault(f *Fault, base []WeightedOutcome) {
	outs := base
	if f != nil && f.DelayPercent > 0 && f.DelaySeconds > 0 {
		var next []WeightedOutcome
		for _, o := range outs {
			if f.DelayPercent < 100 {
				next = append(next, WeightedOutcome{Percent: o.Percent * (100 - f.DelayPercent) / 100, Outcome: o.Outcome})
			}
			delayed := o.Outcome
			delayed.Flags = addFlag(delayed.Flags, "DI")
			next = append(next, WeightedOutcome{Percent: o.Percent * f.DelayPercent / 100, Outcome: delayed})
		}
		outs = next
	}
	if f != nil && f.AbortPercent > 0 && (f.AbortStatus > 0 || f.AbortGrpcStatus > 0) {
		var next []WeightedOutcome
		for _, o := range outs {
			if f.AbortPercent < 100 {
				next = append(next, WeightedOutcome{Percent: o.Percent * (100 - f.AbortPercent) / 100, Outcome: o.Outcome})
			}
			ab := Outcome{Kind: "local_reply", Status: f.AbortStatus, Flags: addFlag(delayFlag(o.Outcome.Flags), "FI"), Details: "fault_filter_abort"}
			if f.AbortGrpcStatus > 0 {
				ab.Status = 200
			}
			next = append(next, WeightedOutcome{Percent: o.Percent * f.AbortPercent / 100, Outcome: ab})
		}
		outs = next
	}
	d.setOutcomes(outs)
}

func delayFlag(flags string) string {
	if strings.Contains(flags, "DI") {
		return "DI"
	}
	return "-"
}

// flagOrder is the order Envoy prints response flags in (StreamInfo::ResponseFlagUtils).
var flagOrder = []string{"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR"}

func addFlag(flags, f string) string {
	set := map[string]bool{f: true}
	if flags != "-" && flags != "" {
		for _, x := range strings.Split(flags, ",") {
			set[x] = true
		}
	}
	var out []string
	for _, x := range flagOrder {
		if set[x] {
			out = append(out, x)
		}
	}
	return strings.Join(out, ",")
}

// setOutcomes merges equal outcomes and sets Outcome when there is only one.
func (d *deriver) setOutcomes(outs []WeightedOutcome) {
	var merged []WeightedOutcome
	for _, o := range outs {
		if o.Percent <= 0 {
			continue
		}
		found := false
		for i := range merged {
			if merged[i].Outcome == o.Outcome {
				merged[i].Percent += o.Percent
				found = true
				break
			}
		}
		if !found {
			merged = append(merged, o)
		}
	}
	for i := range merged {
		merged[i].Percent = math.Round(merged[i].Percent*1e6) / 1e6
	}
	d.res.Outcomes = merged
	if len(merged) == 1 {
		o := merged[0].Outcome
		d.res.Outcome = &o
	} else {
		d.res.Outcome = nil
	}
}

// targets assesses each cluster and sets the outcomes, weighted as Envoy picks clusters
// (weight over the sum of weights).
func (d *deriver) targets(ts []ClusterTarget, isHTTP bool, f *Fault) {
	if len(ts) == 0 {
		d.note("the action names no cluster")
		return
	}
	var total float64
	for _, t := range ts {
		total += float64(t.Weight)
	}
	var outs []WeightedOutcome
	for i := range ts {
		ts[i] = d.assess(ts[i], isHTTP)
		if total > 0 {
			outs = append(outs, WeightedOutcome{Percent: float64(ts[i].Weight) * 100 / total, Outcome: ts[i].Outcome})
		}
	}
	d.res.Clusters = ts
	if isHTTP {
		d.outcomeWithFault(f, outs)
	} else {
		d.setOutcomes(outs)
	}
}

func (d *deriver) findCluster(name string) *cluster.Cluster {
	for _, c := range d.cfg.Clusters {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

func (d *deriver) findCLA(name string) *endpoint.ClusterLoadAssignment {
	for _, e := range d.cfg.Endpoints {
		if e.GetClusterName() == name {
			return e
		}
	}
	return nil
}

// assess decides what happens to a request sent to one cluster: the router's cluster lookup
// (no cluster: NC, cluster_not_found, with the route's cluster_not_found_response_code, 503 by
// default) and host selection (no host: 503 UH,
// no_healthy_upstream), source/common/router/router.cc. Hosts count by EDS health status; when
// every host is unhealthy Envoy's panic mode still routes to them unless the panic threshold is 0
// (source/common/upstream/load_balancer_impl.cc).
func (d *deriver) assess(t ClusterTarget, isHTTP bool) ClusterTarget {
	c := d.findCluster(t.Name)
	noCluster := Outcome{Kind: "local_reply", Status: d.ncStatus, Flags: "NC", Details: "cluster_not_found"}
	noHost := Outcome{Kind: "local_reply", Status: 503, Flags: "UH", Details: "no_healthy_upstream"}
	if !isHTTP {
		noCluster = Outcome{Kind: "connection_reset", Flags: "NC"}
		noHost = Outcome{Kind: "connection_reset", Flags: "UH"}
	}
	if c == nil {
		t.Outcome = noCluster
		d.step("cluster %s: not in CDS → %s", t.Name, describe(noCluster))
		return t
	}
	t.Exists = true
	typ := c.GetType()
	if c.GetClusterType() != nil {
		t.Type = c.GetClusterType().GetName()
		d.note("cluster %s is a custom cluster type (%s), not modelled; assumed to reach a host", t.Name, t.Type)
		t.Outcome = Outcome{Kind: "upstream", Flags: "-", Cluster: t.Name}
		return t
	}
	t.Type = typ.String()
	var cla *endpoint.ClusterLoadAssignment
	switch typ {
	case cluster.Cluster_ORIGINAL_DST:
		t.Outcome = Outcome{Kind: "passthrough", Flags: "-", Cluster: t.Name}
		d.step("cluster %s: ORIGINAL_DST, forwarded to the original destination %s:%d", t.Name, d.req.Address, d.req.Port)
		return t
	case cluster.Cluster_EDS:
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = t.Name
		}
		cla = d.findCLA(name)
	default:
		cla = c.GetLoadAssignment()
		if typ == cluster.Cluster_STRICT_DNS || typ == cluster.Cluster_LOGICAL_DNS {
			d.note("cluster %s resolves its hosts by DNS at run time; the configured host names are counted as hosts", t.Name)
		}
	}
	counts := &EndpointCounts{PanicThresholdPercent: 50}
	if pt := c.GetCommonLbConfig().GetHealthyPanicThreshold(); pt != nil {
		counts.PanicThresholdPercent = pt.GetValue()
	}
	for _, lle := range cla.GetEndpoints() {
		for _, e := range lle.GetLbEndpoints() {
			counts.Total++
			switch e.GetHealthStatus() {
			case core.HealthStatus_UNKNOWN, core.HealthStatus_HEALTHY:
				counts.Healthy++
			case core.HealthStatus_DEGRADED:
				counts.Degraded++
			default:
				counts.Unhealthy++
			}
		}
	}
	t.Endpoints = counts
	switch {
	case counts.Total == 0:
		t.Outcome = noHost
		d.step("cluster %s: %s with no hosts → %s", t.Name, t.Type, describe(noHost))
	case counts.Healthy+counts.Degraded > 0:
		t.Outcome = Outcome{Kind: "upstream", Flags: "-", Cluster: t.Name}
		d.step("cluster %s: %d healthy of %d hosts → upstream", t.Name, counts.Healthy+counts.Degraded, counts.Total)
	case counts.PanicThresholdPercent > 0:
		t.Outcome = Outcome{Kind: "upstream", Flags: "-", Cluster: t.Name}
		d.step("cluster %s: all %d hosts unhealthy; below the panic threshold (%.4g%%) Envoy routes to them anyway", t.Name, counts.Total, counts.PanicThresholdPercent)
		d.note("cluster %s is in panic mode: requests go to unhealthy hosts", t.Name)
	default:
		t.Outcome = noHost
		d.step("cluster %s: all %d hosts unhealthy and panic threshold 0 → %s", t.Name, counts.Total, describe(noHost))
	}
	return t
}

func describe(o Outcome) string {
	switch o.Kind {
	case "local_reply":
		return fmt.Sprintf("%d %s (%s)", o.Status, o.Flags, o.Details)
	default:
		return o.Kind + " " + o.Flags
	}
}
