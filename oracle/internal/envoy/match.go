package envoy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// compileRE2 compiles an Envoy safe_regex for a full match. Envoy uses RE2, whose syntax Go's
// regexp implements; Envoy's regex matchers must match the whole string
// (source/common/common/regex.cc, CompiledGoogleReMatcher::match uses RE2::FullMatch).
func compileRE2(re string) (*regexp.Regexp, error) {
	return regexp.Compile(`^(?:` + re + `)$`)
}

// stringMatch is Envoy's StringMatcher (source/common/common/matchers.h, StringMatcherImpl).
func stringMatch(m *matcher.StringMatcher, v string) (bool, error) {
	ic := m.GetIgnoreCase()
	eq := func(a, b string) bool {
		if ic {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcher.StringMatcher_Exact:
		return eq(v, p.Exact), nil
	case *matcher.StringMatcher_Prefix:
		return len(v) >= len(p.Prefix) && eq(v[:len(p.Prefix)], p.Prefix), nil
	case *matcher.StringMatcher_Suffix:
		return len(v) >= len(p.Suffix) && eq(v[len(v)-len(p.Suffix):], p.Suffix), nil
	case *matcher.StringMatcher_Contains:
		if ic {
			return strings.Contains(strings.ToLower(v), strings.ToLower(p.Contains)), nil
		}
		return strings.Contains(v, p.Contains), nil
	case *matcher.StringMatcher_SafeRegex:
		re, err := compileRE2(p.SafeRegex.GetRegex())
		if err != nil {
			return false, fmt.Errorf("regex %q: %v", p.SafeRegex.GetRegex(), err)
		}
		return re.MatchString(v), nil
	}
	return false, fmt.Errorf("string matcher %T is not modelled", m.GetMatchPattern())
}

// headerMatch is Envoy's HeaderMatcher (source/common/http/header_utility.cc): a header that is
// absent never matches (whatever invert_match says) unless treat_missing_header_as_empty, except
// for present_match, which compares presence; invert_match negates the result otherwise.
func headerMatch(m *route.HeaderMatcher, h headerMap) (bool, error) {
	v, present := h.get(m.GetName())
	if pm, ok := m.GetHeaderMatchSpecifier().(*route.HeaderMatcher_PresentMatch); ok {
		res := present == pm.PresentMatch
		if m.GetInvertMatch() {
			res = !res
		}
		return res, nil
	}
	if !present {
		if !m.GetTreatMissingHeaderAsEmpty() {
			return false, nil
		}
		v = ""
	}
	var res bool
	var err error
	switch s := m.GetHeaderMatchSpecifier().(type) {
	case *route.HeaderMatcher_ExactMatch:
		res = s.ExactMatch == "" || v == s.ExactMatch
	case *route.HeaderMatcher_SafeRegexMatch:
		var re *regexp.Regexp
		re, err = compileRE2(s.SafeRegexMatch.GetRegex())
		if err == nil {
			res = re.MatchString(v)
		}
	case *route.HeaderMatcher_RangeMatch:
		n, perr := strconv.ParseInt(v, 10, 64)
		res = perr == nil && n >= s.RangeMatch.GetStart() && n < s.RangeMatch.GetEnd()
	case *route.HeaderMatcher_PrefixMatch:
		res = strings.HasPrefix(v, s.PrefixMatch)
	case *route.HeaderMatcher_SuffixMatch:
		res = strings.HasSuffix(v, s.SuffixMatch)
	case *route.HeaderMatcher_ContainsMatch:
		res = strings.Contains(v, s.ContainsMatch)
	case *route.HeaderMatcher_StringMatch:
		res, err = stringMatch(s.StringMatch, v)
	case nil:
		// No specifier: matches on presence.
		res = true
	default:
		err = fmt.Errorf("header matcher %T is not modelled", s)
	}
	if err != nil {
		return false, err
	}
	if m.GetInvertMatch() {
		res = !res
	}
	return res, nil
}

// queryParams parses the query string the way Envoy's route matching does
// (Http::Utility::QueryParamsMulti::parseQueryString: split on & and =, no percent-decoding).
func queryParams(path string) map[string][]string {
	out := map[string][]string{}
	i := strings.IndexByte(path, '?')
	if i < 0 {
		return out
	}
	q := path[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for _, kv := range strings.Split(q, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		out[k] = append(out[k], v)
	}
	return out
}

// queryMatch is Envoy's QueryParameterMatcher (source/common/router/config_utility.cc): the
// first value of the parameter is matched; an absent parameter never matches.
func queryMatch(m *route.QueryParameterMatcher, q map[string][]string) (bool, error) {
	vals, ok := q[m.GetName()]
	if !ok || len(vals) == 0 {
		return false, nil
	}
	switch s := m.GetQueryParameterMatchSpecifier().(type) {
	case *route.QueryParameterMatcher_PresentMatch:
		return s.PresentMatch, nil
	case *route.QueryParameterMatcher_StringMatch:
		return stringMatch(s.StringMatch, vals[0])
	}
	return true, nil
}

// pathOnly removes the query string and fragment (Http::PathUtil::removeQueryAndFragment).
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// pathMatch applies the route's path specifier to the request path (without query), honouring
// case_sensitive (default true). It returns the matched portion for prefix rewrites.
func pathMatch(m *route.RouteMatch, fullPath string) (bool, string, error) {
	p := pathOnly(fullPath)
	cs := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	hasPrefix := func(s, prefix string) bool {
		if len(s) < len(prefix) {
			return false
		}
		if cs {
			return s[:len(prefix)] == prefix
		}
		return strings.EqualFold(s[:len(prefix)], prefix)
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *route.RouteMatch_Prefix:
		return hasPrefix(p, ps.Prefix), ps.Prefix, nil
	case *route.RouteMatch_Path:
		if cs {
			return p == ps.Path, ps.Path, nil
		}
		return strings.EqualFold(p, ps.Path), ps.Path, nil
	case *route.RouteMatch_SafeRegex:
		re, err := compileRE2(ps.SafeRegex.GetRegex())
		if err != nil {
			return false, "", fmt.Errorf("path regex %q: %v", ps.SafeRegex.GetRegex(), err)
		}
		return re.MatchString(p), p, nil
	case *route.RouteMatch_PathSeparatedPrefix:
		pre := ps.PathSeparatedPrefix
		ok := hasPrefix(p, pre) && (len(p) == len(pre) || p[len(pre)] == '/')
		return ok, pre, nil
	case *route.RouteMatch_ConnectMatcher_:
		return false, "", nil // only CONNECT requests, which calls do not model
	}
	return false, "", fmt.Errorf("path specifier %T is not modelled", m.GetPathSpecifier())
}

// normalizePath applies the HTTP connection manager's path normalization: normalize_path removes
// dot segments (RFC 3986 section 5.2.4) and merge_slashes collapses repeated slashes
// (source/common/http/path_utility.cc).
func normalizePath(p string, normalize, mergeSlashes bool) string {
	path, query := p, ""
	if i := strings.IndexByte(p, '?'); i >= 0 {
		path, query = p[:i], p[i:]
	}
	if normalize {
		path = removeDotSegments(path)
	}
	if mergeSlashes {
		for strings.Contains(path, "//") {
			path = strings.ReplaceAll(path, "//", "/")
		}
	}
	return path + query
}

// removeDotSegments is RFC 3986 section 5.2.4.
func removeDotSegments(in string) string {
	var out []string
	segs := strings.Split(in, "/")
	for i, s := range segs {
		switch s {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	res := strings.Join(out, "/")
	if !strings.HasPrefix(res, "/") {
		res = "/" + res
	}
	return res
}
