package envoy

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
)

// Names Istio gives its catch-all listeners (pilot/pkg/model: VirtualOutboundListenerName,
// VirtualInboundListenerName).
const (
	virtualOutbound = "virtualOutbound"
	virtualInbound  = "virtualInbound"
	tlsInspector    = "envoy.filters.listener.tls_inspector"
	httpInspector   = "envoy.filters.listener.http_inspector"
)

// matchListener finds the listener that handles the connection.
//
// Outbound: the virtual outbound listener has use_original_dst; Envoy hands the connection to the
// listener whose address is exactly the original destination, else to the wildcard listener on
// that port, else keeps it (source/common/listener_manager/active_tcp_socket.cc,
// ActiveTcpSocket::newConnection; connection_handler_impl.cc, findActiveTcpListenerByAddress).
// Gateway: only a listener bound to the port accepts the connection; otherwise the kernel
// refuses it.
func matchListener(ls []*listener.Listener, r Request) (*listener.Listener, string) {
	addr := r.Address
	if addr == "" {
		addr = "0.0.0.0"
	}
	switch r.Mode {
	case Inbound:
		for _, l := range ls {
			if l.Name == virtualInbound {
				return l, "the virtual inbound listener receives every captured inbound connection"
			}
		}
		return nil, "the proxy has no virtual inbound listener"
	case Gateway:
		for _, pass := range []string{addr, "0.0.0.0"} {
			for _, l := range ls {
				if l.GetBindToPort() != nil && !l.GetBindToPort().GetValue() {
					continue
				}
				if listenerAt(l, pass, r.Port) {
					return l, fmt.Sprintf("bound to %s:%d", pass, r.Port)
				}
			}
		}
		return nil, fmt.Sprintf("no listener is bound to port %d: the connection is refused", r.Port)
	default:
		for _, pass := range []string{addr, "0.0.0.0"} {
			for _, l := range ls {
				if l.Name == virtualOutbound {
					continue
				}
				if listenerAt(l, pass, r.Port) {
					return l, fmt.Sprintf("original destination %s:%d handed to the listener at %s:%d", addr, r.Port, pass, r.Port)
				}
			}
		}
		for _, l := range ls {
			if l.Name == virtualOutbound {
				return l, fmt.Sprintf("no listener for %s:%d; the virtual outbound listener keeps the connection", addr, r.Port)
			}
		}
		return nil, "the proxy has no listener for the destination and no virtual outbound listener"
	}
}

func listenerAt(l *listener.Listener, addr string, port int) bool {
	match := func(a *core.Address) bool {
		sa := a.GetSocketAddress()
		return sa != nil && sa.GetAddress() == addr && int(sa.GetPortValue()) == port
	}
	if match(l.GetAddress()) {
		return true
	}
	for _, aa := range l.GetAdditionalAddresses() {
		if match(aa.GetAddress()) {
			return true
		}
	}
	return false
}

// listenerFilterOn says whether the listener runs a listener filter for this port
// (filter_disabled predicates are evaluated on the destination port).
func listenerFilterOn(l *listener.Listener, name string, port int) bool {
	for _, f := range l.GetListenerFilters() {
		if f.GetName() != name {
			continue
		}
		if f.GetFilterDisabled() == nil {
			return true
		}
		return !predicate(f.GetFilterDisabled(), port)
	}
	return false
}

func predicate(p *listener.ListenerFilterChainMatchPredicate, port int) bool {
	switch r := p.GetRule().(type) {
	case *listener.ListenerFilterChainMatchPredicate_OrMatch:
		for _, x := range r.OrMatch.GetRules() {
			if predicate(x, port) {
				return true
			}
		}
		return false
	case *listener.ListenerFilterChainMatchPredicate_AndMatch:
		for _, x := range r.AndMatch.GetRules() {
			if !predicate(x, port) {
				return false
			}
		}
		return true
	case *listener.ListenerFilterChainMatchPredicate_NotMatch:
		return !predicate(r.NotMatch, port)
	case *listener.ListenerFilterChainMatchPredicate_AnyMatch:
		return r.AnyMatch
	case *listener.ListenerFilterChainMatchPredicate_DestinationPortRange:
		return int32(port) >= r.DestinationPortRange.GetStart() && int32(port) < r.DestinationPortRange.GetEnd()
	}
	return false
}

// detected is what the listener filters learn about the connection before filter chain matching.
type detected struct {
	transport string // "tls" or "raw_buffer"
	alpn      string
	sni       string
}

// detect applies tls_inspector and http_inspector as Envoy would: without tls_inspector the
// transport protocol is raw_buffer and no SNI or ALPN is known; http_inspector sets "http/1.1" or
// "h2c" on plaintext HTTP (source/extensions/filters/listener/{tls,http}_inspector).
func detect(l *listener.Listener, r Request) detected {
	d := detected{transport: "raw_buffer"}
	if listenerFilterOn(l, tlsInspector, r.Port) {
		if r.TLS != "plaintext" {
			d.transport = "tls"
			d.sni = r.SNI
			d.alpn = r.ALPN
		}
	}
	if r.TLS == "plaintext" && listenerFilterOn(l, httpInspector, r.Port) {
		switch r.Protocol {
		case "http":
			d.alpn = "http/1.1"
		case "http2":
			d.alpn = "h2c"
		}
	}
	return d
}

// matchFilterChain follows Envoy's filter chain match order (destination port, destination IP,
// server name, transport protocol, application protocols; source criteria are not modelled):
// at each step the most specific chains that match stay; chains that do not set the criterion
// stay only when none that sets it matches (source/common/listener_manager/filter_chain_manager_impl.cc).
func matchFilterChain(l *listener.Listener, r Request, d detected) (*listener.FilterChain, []string, error) {
	var notes []string
	chains := l.GetFilterChains()
	addr, _ := netip.ParseAddr(r.Address)
	chains = rank(chains, func(m *listener.FilterChainMatch) any { return m.GetDestinationPort() }, func(m *listener.FilterChainMatch) int {
		if int(m.GetDestinationPort().GetValue()) == r.Port {
			return 1
		}
		return 0
	})
	chains = rank(chains, func(m *listener.FilterChainMatch) any { return m.GetPrefixRanges() }, func(m *listener.FilterChainMatch) int {
		best := 0
		for _, c := range m.GetPrefixRanges() {
			p, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", c.GetAddressPrefix(), c.GetPrefixLen().GetValue()))
			if err == nil && addr.IsValid() && p.Contains(addr) && p.Bits()+1 > best {
				best = p.Bits() + 1
			}
		}
		return best
	})
	chains = rank(chains, func(m *listener.FilterChainMatch) any { return m.GetServerNames() }, func(m *listener.FilterChainMatch) int {
		best := 0
		sni := strings.ToLower(d.sni)
		for _, s := range m.GetServerNames() {
			s = strings.ToLower(s)
			if s == sni {
				return 1 << 20
			}
			if strings.HasPrefix(s, "*.") && strings.HasSuffix(sni, s[1:]) && len(s) > best {
				best = len(s)
			}
		}
		return best
	})
	chains = rank(chains, func(m *listener.FilterChainMatch) any { return m.GetTransportProtocol() }, func(m *listener.FilterChainMatch) int {
		if m.GetTransportProtocol() == d.transport {
			return 1
		}
		return 0
	})
	chains = rank(chains, func(m *listener.FilterChainMatch) any { return m.GetApplicationProtocols() }, func(m *listener.FilterChainMatch) int {
		for _, p := range m.GetApplicationProtocols() {
			if p == d.alpn {
				return 1
			}
		}
		return 0
	})
	for _, c := range chains {
		m := c.GetFilterChainMatch()
		if len(m.GetSourcePrefixRanges()) > 0 || len(m.GetSourcePorts()) > 0 || len(m.GetDirectSourcePrefixRanges()) > 0 ||
			m.GetSourceType() != listener.FilterChainMatch_ANY {
			notes = append(notes, fmt.Sprintf("filter chain %q also matches on the source, which is not modelled", c.GetName()))
		}
	}
	switch {
	case len(chains) == 1:
		return chains[0], notes, nil
	case len(chains) > 1:
		return nil, notes, fmt.Errorf("%d filter chains of listener %s match equally; Envoy would reject such a listener", len(chains), l.GetName())
	case l.GetDefaultFilterChain() != nil:
		return l.GetDefaultFilterChain(), notes, nil
	}
	return nil, notes, nil
}

func rank(chains []*listener.FilterChain, field func(*listener.FilterChainMatch) any, score func(*listener.FilterChainMatch) int) []*listener.FilterChain {
	anySet := false
	for _, c := range chains {
		if !isZero(field(c.GetFilterChainMatch())) {
			anySet = true
			break
		}
	}
	if !anySet {
		return chains
	}
	best := 0
	var out []*listener.FilterChain
	for _, c := range chains {
		if isZero(field(c.GetFilterChainMatch())) {
			continue
		}
		s := score(c.GetFilterChainMatch())
		switch {
		case s > best:
			best = s
			out = []*listener.FilterChain{c}
		case s == best && s > 0:
			out = append(out, c)
		}
	}
	if best > 0 {
		return out
	}
	for _, c := range chains {
		if isZero(field(c.GetFilterChainMatch())) {
			out = append(out, c)
		}
	}
	return out
}

func isZero(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.String:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return rv.IsZero()
}
