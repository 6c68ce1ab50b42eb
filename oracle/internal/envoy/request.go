package envoy

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Mode says how a connection reaches the proxy.
type Mode string

const (
	// Outbound: an application's connection captured by iptables into the sidecar's virtual
	// outbound listener (15001), which hands it to the listener of its original destination.
	Outbound Mode = "outbound"
	// Gateway: a connection to a port the proxy itself listens on (an ingress gateway).
	Gateway Mode = "gateway"
	// Inbound: a connection captured into the sidecar's virtual inbound listener (15006).
	Inbound Mode = "inbound"
)

// Request is one connection (and for HTTP, one request on it).
type Request struct {
	Mode     Mode
	Address  string // destination IP of the connection
	Port     int    // destination port of the connection
	Protocol string // "http", "http2" or "tcp"
	TLS      string // "plaintext" (default), "tls" or "mtls"
	SNI      string
	ALPN     string

	// HTTP only.
	Authority string
	Path      string // with query string; default "/"
	Method    string // default "GET"
	Scheme    string // default "http" for plaintext, "https" over TLS
	Headers   map[string]string
}

// IsHTTP says whether the request is HTTP over plaintext (what an HTTP connection manager decodes).
func (r Request) IsHTTP() bool {
	return (r.Protocol == "http" || r.Protocol == "http2") && (r.TLS == "" || r.TLS == "plaintext")
}

// Normalize fills defaults and checks the request.
func (r Request) Normalize() (Request, error) {
	if r.Protocol == "" {
		r.Protocol = "http"
	}
	switch r.Protocol {
	case "http", "http2", "tcp":
	default:
		return r, fmt.Errorf("protocol %q: want http, http2 or tcp", r.Protocol)
	}
	if r.TLS == "" {
		r.TLS = "plaintext"
	}
	switch r.TLS {
	case "plaintext", "tls", "mtls":
	default:
		return r, fmt.Errorf("tls %q: want plaintext, tls or mtls", r.TLS)
	}
	if r.Port <= 0 || r.Port > 65535 {
		return r, fmt.Errorf("port %d: want 1-65535", r.Port)
	}
	if r.Address != "" && net.ParseIP(r.Address) == nil {
		return r, fmt.Errorf("address %q is not an IP address", r.Address)
	}
	if r.Path == "" {
		r.Path = "/"
	}
	if r.Method == "" {
		r.Method = "GET"
	}
	if r.Scheme == "" {
		if r.TLS == "plaintext" {
			r.Scheme = "http"
		} else {
			r.Scheme = "https"
		}
	}
	if r.Protocol != "tcp" && r.Authority == "" {
		return r, fmt.Errorf("authority is required for HTTP calls (the Host header)")
	}
	h := map[string]string{}
	for k, v := range r.Headers {
		lk := strings.ToLower(k)
		if lk == "host" || lk == ":authority" {
			return r, fmt.Errorf("header %q: give the authority field instead", k)
		}
		if strings.HasPrefix(lk, ":") && lk != ":scheme" {
			return r, fmt.Errorf("header %q: pseudo-headers come from authority, path, method", k)
		}
		h[lk] = v
	}
	r.Headers = h
	return r, nil
}

// headerMap is the request's headers as Envoy's router sees them: pseudo-headers included,
// names lower-case. Multiple values of a header are one comma-joined value (Envoy's
// HeaderUtility::getAllOfHeaderAsString does the same).
type headerMap map[string]string

func (r Request) headerMap(authority, path string) headerMap {
	h := headerMap{}
	for k, v := range r.Headers {
		h[k] = v
	}
	h[":authority"] = authority
	h[":path"] = path
	h[":method"] = r.Method
	h[":scheme"] = r.Scheme
	// The connection manager sets x-forwarded-proto when it is absent
	// (source/common/http/conn_manager_utility.cc).
	if _, ok := h["x-forwarded-proto"]; !ok {
		h["x-forwarded-proto"] = r.Scheme
	}
	return h
}

func (h headerMap) get(name string) (string, bool) {
	v, ok := h[strings.ToLower(name)]
	return v, ok
}

func (h headerMap) names() []string {
	var out []string
	for k := range h {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// splitHostPort splits "host:port" (and "[v6]:port"); a host without port returns port "".
func splitHostPort(hostport string) (host, port string) {
	if strings.HasPrefix(hostport, "[") {
		if i := strings.LastIndex(hostport, "]:"); i >= 0 {
			return hostport[:i+1], hostport[i+2:]
		}
		return hostport, ""
	}
	if i := strings.LastIndex(hostport, ":"); i >= 0 {
		if _, err := strconv.Atoi(hostport[i+1:]); err == nil {
			return hostport[:i], hostport[i+1:]
		}
	}
	return hostport, ""
}
