package envoy

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func vh(name string, domains ...string) *route.VirtualHost {
	return &route.VirtualHost{Name: name, Domains: domains}
}

func TestFindVirtualHostOrder(t *testing.T) {
	rc := &route.RouteConfiguration{
		IgnorePortInHostMatching: true,
		VirtualHosts: []*route.VirtualHost{
			vh("default", "*"),
			vh("short-suffix", "*.com"),
			vh("long-suffix", "*.example.com"),
			vh("prefix", "api.*"),
			vh("exact", "API.example.com"),
		},
	}
	cases := map[string]string{
		"api.example.com:80": "exact",        // exact beats wildcards; domains and host compare lower-cased
		"www.example.com":    "long-suffix",  // longest suffix wildcard first
		"www.other.com":      "short-suffix", //
		"api.internal":       "prefix",       // suffix wildcards before prefix wildcards
		".example.com":       "short-suffix", // a wildcard never matches an empty label
		"nothing":            "default",
	}
	for host, want := range cases {
		if got := findVirtualHost(rc, host); got == nil || got.Name != want {
			t.Errorf("%s: got %v, want %s", host, got.GetName(), want)
		}
	}
	rc.IgnorePortInHostMatching = false
	if got := findVirtualHost(rc, "api.example.com:80"); got.GetName() != "prefix" {
		t.Errorf("with the port kept, api.example.com:80 should fall to the prefix wildcard, got %s", got.GetName())
	}
}

func exact(name, v string, invert bool) *route.HeaderMatcher {
	return &route.HeaderMatcher{Name: name, InvertMatch: invert, HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{
		StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: v}}}}
}

func TestHeaderMatchAbsentHeader(t *testing.T) {
	h := headerMap{"end-user": "jason"}
	cases := []struct {
		m    *route.HeaderMatcher
		want bool
	}{
		{exact("end-user", "jason", false), true},
		{exact("End-User", "jason", false), true}, // names are case-insensitive
		{exact("end-user", "Jason", false), false},
		{exact("end-user", "mike", true), true},
		{exact("x-absent", "v", false), false},
		{exact("x-absent", "v", true), false}, // absent never matches, even inverted
		{&route.HeaderMatcher{Name: "x-absent", TreatMissingHeaderAsEmpty: true, InvertMatch: true,
			HeaderMatchSpecifier: &route.HeaderMatcher_StringMatch{StringMatch: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: "v"}}}}, true},
		{&route.HeaderMatcher{Name: "x-absent", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: false}}, true},
		{&route.HeaderMatcher{Name: "end-user", HeaderMatchSpecifier: &route.HeaderMatcher_PresentMatch{PresentMatch: true}}, true},
	}
	for i, c := range cases {
		got, err := headerMatch(c.m, h)
		if err != nil || got != c.want {
			t.Errorf("case %d (%s): got %v %v, want %v", i, describeHeader(c.m), got, err, c.want)
		}
	}
}

func TestPathMatch(t *testing.T) {
	cases := []struct {
		m    *route.RouteMatch
		path string
		want bool
	}{
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/api"}}, "/apix?q=1", true},
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, "/apix", false},
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, "/api/x", true},
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, "/api?x", true},
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/a"}}, "/a?b=c", true},
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: "/A"}, CaseSensitive: wrapperspb.Bool(false)}, "/a", true},
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/v[0-9]"}}}, "/v1/x", false}, // full match
		{&route.RouteMatch{PathSpecifier: &route.RouteMatch_SafeRegex{SafeRegex: &matcher.RegexMatcher{Regex: "/v[0-9].*"}}}, "/v1/x", true},
	}
	for i, c := range cases {
		got, _, err := pathMatch(c.m, c.path)
		if err != nil || got != c.want {
			t.Errorf("case %d (%s on %s): got %v %v, want %v", i, describeMatch(c.m), c.path, got, err, c.want)
		}
	}
}

func TestNormalizePath(t *testing.T) {
	cases := map[string]string{
		"/a/b/../c":     "/a/c",
		"/a/./b/":       "/a/b/",
		"/..":           "/",
		"/a/..?x=/../y": "/?x=/../y",
	}
	for in, want := range cases {
		if got := normalizePath(in, true, false); got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
	if got := normalizePath("/a//b", false, true); got != "/a/b" {
		t.Errorf("merge_slashes: got %s", got)
	}
}

func TestAddFlagOrder(t *testing.T) {
	if got := addFlag("UH", "DI"); got != "UH,DI" {
		t.Errorf("got %s", got)
	}
	if got := addFlag("DI", "NC"); got != "DI,NC" {
		t.Errorf("got %s", got)
	}
	if got := addFlag("-", "FI"); got != "FI" {
		t.Errorf("got %s", got)
	}
}

// One HTTP listener on 0.0.0.0:80 routing by RDS, for whole-derivation tests.
func httpConfig(t *testing.T, rc *route.RouteConfiguration, clusters []*cluster.Cluster, cla []*endpoint.ClusterLoadAssignment) Config {
	t.Helper()
	h, err := anypb.New(&hcm.HttpConnectionManager{
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: rc.Name}},
		NormalizePath:  wrapperspb.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	l := &listener.Listener{
		Name:         "0.0.0.0_80",
		Address:      &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "0.0.0.0", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 80}}}},
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{Name: hcmName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: h}}}}},
	}
	return Config{Listeners: []*listener.Listener{l}, Routes: []*route.RouteConfiguration{rc}, Clusters: clusters, Endpoints: cla}
}

func TestRedirectLocation(t *testing.T) {
	redirect := func(ra *route.RedirectAction) *route.RouteConfiguration {
		return &route.RouteConfiguration{Name: "80", VirtualHosts: []*route.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*route.Route{{
			Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/old"}}, Action: &route.Route_Redirect{Redirect: ra}}}}}}
	}
	cases := []struct {
		ra        *route.RedirectAction
		authority string
		path      string
		status    int
		location  string
	}{
		// https_redirect drops the request's port when it is the old scheme's default.
		{&route.RedirectAction{SchemeRewriteSpecifier: &route.RedirectAction_HttpsRedirect{HttpsRedirect: true}}, "shop.example:80", "/old/x?q=1", 301, "https://shop.example/old/x?q=1"},
		// ... and keeps a non-default one.
		{&route.RedirectAction{SchemeRewriteSpecifier: &route.RedirectAction_HttpsRedirect{HttpsRedirect: true}}, "shop.example:8080", "/old", 301, "https://shop.example:8080/old"},
		{&route.RedirectAction{PathRewriteSpecifier: &route.RedirectAction_PrefixRewrite{PrefixRewrite: "/new"}, ResponseCode: route.RedirectAction_FOUND}, "a", "/old/x", 302, "http://a/new/x"},
		{&route.RedirectAction{HostRedirect: "b.example", PortRedirect: 9000, PathRewriteSpecifier: &route.RedirectAction_PathRedirect{PathRedirect: "/p"}, StripQuery: true}, "a:80", "/old?x=1", 301, "http://b.example:9000/p"},
	}
	for i, c := range cases {
		cfg := httpConfig(t, redirect(c.ra), nil, nil)
		res, err := Derive(cfg, Request{Mode: Outbound, Address: "10.0.0.1", Port: 80, Authority: c.authority, Path: c.path})
		if err != nil {
			t.Fatal(err)
		}
		if res.Outcome == nil || res.Outcome.Status != c.status || res.Outcome.Location != c.location {
			t.Errorf("case %d: outcome %+v, want %d %s", i, res.Outcome, c.status, c.location)
		}
	}
}

func TestClusterOutcomes(t *testing.T) {
	rc := &route.RouteConfiguration{Name: "80", VirtualHosts: []*route.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []*route.Route{{
		Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
		Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_WeightedClusters{WeightedClusters: &route.WeightedCluster{
			Clusters: []*route.WeightedCluster_ClusterWeight{
				{Name: "up", Weight: wrapperspb.UInt32(50)},
				{Name: "empty", Weight: wrapperspb.UInt32(25)},
				{Name: "missing", Weight: wrapperspb.UInt32(25)},
			}}}}}}}}}}
	eds := func(name string) *cluster.Cluster {
		return &cluster.Cluster{Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS}}
	}
	host := &endpoint.LbEndpoint{HealthStatus: core.HealthStatus_HEALTHY}
	cfg := httpConfig(t, rc, []*cluster.Cluster{eds("up"), eds("empty")}, []*endpoint.ClusterLoadAssignment{
		{ClusterName: "up", Endpoints: []*endpoint.LocalityLbEndpoints{{LbEndpoints: []*endpoint.LbEndpoint{host}}}},
		{ClusterName: "empty"},
	})
	res, err := Derive(cfg, Request{Mode: Outbound, Address: "10.0.0.1", Port: 80, Authority: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"upstream": 50, "UH": 25, "NC": 25}
	if res.Outcome != nil || len(res.Outcomes) != 3 {
		t.Fatalf("outcomes %+v", res.Outcomes)
	}
	for _, o := range res.Outcomes {
		key := o.Outcome.Flags
		if o.Outcome.Kind == "upstream" {
			key = "upstream"
		} else if o.Outcome.Status != 503 {
			t.Errorf("%+v: want status 503", o)
		}
		if want[key] != o.Percent {
			t.Errorf("%s: %v%%, want %v%%", key, o.Percent, want[key])
		}
	}
}
