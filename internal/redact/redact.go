// Package redact keeps secrets out of everything the library and the
// simulator show: logs at every level, error texts, transcripts, String
// methods. It works by rule, not by call site:
//
//   - a URL keeps its scheme, host, port, path and query keys, and loses its
//     user info, every query value and its fragment; only the query of a
//     device's own GET /rpc/<Method>, which holds the call's params, keeps
//     the values that are not secret;
//   - the value of a secret-named key (see SecretKey) is masked, as a log
//     attribute, a JSON member or a key=value pair;
//   - a run of 64 or more hex digits, the shape of an ha1 or a digest
//     response, is masked.
//
// What is masked becomes Mask. Redacting is idempotent.
package redact

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "REDACTED"

// SecretKey reports whether a key (of a log attribute, a JSON member, a
// query or key=value pair) names a secret: a password (any key holding
// "pass" or "pwd"), an ha1 or digest response, a cnonce, a token, a
// secret, a credential, an Authorization header or a key such as
// remote_key or api_key.
func SecretKey(key string) bool {
	k := strings.ToLower(key)
	switch k {
	case "ha1", "response", "cnonce", "authorization", "proxy-authorization", "cookie", "set-cookie", "psk", "apikey":
		return true
	}
	for _, s := range []string{"pass", "pwd", "secret", "token", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return strings.HasSuffix(k, "_key") || strings.HasSuffix(k, "-key")
}

// URL redacts one URL or request URI (scheme and host optional): the user
// info becomes Mask@, each query value Mask (a query part without "=",
// which is all value, too), and the fragment Mask. Everything else is
// kept as written, so the result still says which server and path it was.
// A path holding /rpc/ is a device's RPC over HTTP: its query is params,
// of which only the secret ones are masked.
func URL(raw string) string {
	var b strings.Builder
	b.Grow(len(raw))
	rest := raw
	if i := strings.Index(rest, "://"); i >= 0 {
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		authority := rest[:end]
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			b.WriteString(Mask + "@")
			authority = authority[at+1:]
		}
		b.WriteString(authority)
		rest = rest[end:]
	}
	frag := ""
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest, frag = rest[:i], rest[i+1:]
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	b.WriteString(path)
	if hasQuery && strings.Contains(path, "/rpc/") {
		b.WriteByte('?')
		b.WriteString(rpcQuery(query))
	} else if hasQuery {
		b.WriteByte('?')
		for i, part := range strings.Split(query, "&") {
			if i > 0 {
				b.WriteByte('&')
			}
			key, val, hasVal := strings.Cut(part, "=")
			switch {
			case !hasVal && key != "":
				b.WriteString(Mask)
			case hasVal && val != "":
				b.WriteString(key + "=" + Mask)
			default:
				b.WriteString(part)
			}
		}
	}
	if frag != "" {
		b.WriteString("#" + Mask)
	}
	return b.String()
}

// rpcQuery redacts the query of a device's GET /rpc/<Method>, which holds
// the call's params rather than credentials: a secret-named param, or a
// value that holds a secret once unescaped, is masked; the rest is kept.
func rpcQuery(query string) string {
	parts := strings.Split(query, "&")
	for i, part := range parts {
		key, val, hasVal := strings.Cut(part, "=")
		if !hasVal || val == "" {
			continue
		}
		plain, err := url.QueryUnescape(val)
		if err != nil {
			plain = val
		}
		if SecretKey(key) || Text(plain) != plain {
			parts[i] = key + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

var (
	// urlRE finds URLs with a scheme, up to a space, a quote or a bracket.
	urlRE = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'<>\\\\`]+")
	// uriRE finds request URIs with a query: a path starting a word.
	uriRE = regexp.MustCompile("(?:^|[\\s\"'(=])(/[^\\s\"'<>\\\\`?]*\\?[^\\s\"'<>\\\\`]*)")
	// memberRE finds JSON members whose value is a string or a number.
	memberRE = regexp.MustCompile(`"([^"\\]{1,64})"\s*:\s*("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)`)
	// pairRE finds key=value pairs, the value quoted or up to a separator.
	pairRE = regexp.MustCompile(`([A-Za-z][A-Za-z0-9_.-]*)=("(?:[^"\\]|\\.)*"|[^\s&,;"]*)`)
)

// Text redacts free text: URLs and request URIs with URL, the values of
// secret-named JSON members and key=value pairs, and runs of 64 or more
// hex digits. Text that holds none of them is returned as it is.
func Text(s string) string {
	if s == "" {
		return s
	}
	if strings.Contains(s, "://") {
		s = urlRE.ReplaceAllStringFunc(s, func(m string) string {
			// Trailing punctuation belongs to the sentence, not the URL.
			trimmed := strings.TrimRight(m, ".,;:)]}")
			return URL(trimmed) + m[len(trimmed):]
		})
	}
	if strings.Contains(s, "?") {
		s = replaceGroup(uriRE, s, 1, URL, false)
	}
	if strings.Contains(s, `"`) {
		s = replaceGroup(memberRE, s, 2, maskJSON, true)
	}
	if strings.Contains(s, "=") {
		s = replaceGroup(pairRE, s, 2, maskPair, true)
	}
	return maskHex(s)
}

// maskJSON is the masked value of a secret JSON member: a string, so that
// the JSON stays valid.
func maskJSON(string) string { return `"` + Mask + `"` }

// maskPair is the masked value of a secret key=value pair, quoted if it
// was.
func maskPair(val string) string {
	if strings.HasPrefix(val, `"`) {
		return `"` + Mask + `"`
	}
	return Mask
}

// replaceGroup rewrites group g of every match of re in s with f(group).
// For keyed matches (group 1 a key, group 2 its value) only values of
// secret keys that are neither empty nor masked already are rewritten.
func replaceGroup(re *regexp.Regexp, s string, g int, f func(string) string, keyed bool) string {
	idx := re.FindAllStringSubmatchIndex(s, -1)
	if idx == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range idx {
		start, end := m[2*g], m[2*g+1]
		if start < 0 {
			continue
		}
		val := s[start:end]
		if keyed && (!SecretKey(s[m[2]:m[3]]) || val == "" || val == `""` ||
			strings.HasPrefix(val, Mask) || strings.HasPrefix(val, `"`+Mask+`"`)) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString(f(val))
		last = end
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// maskHex masks every run of 64 or more hex digits.
func maskHex(s string) string {
	var b strings.Builder
	last, run := 0, 0
	flush := func(end int) {
		if run >= 64 {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last : end-run])
			b.WriteString(Mask)
			last = end
		}
		run = 0
	}
	for i := 0; i < len(s); i++ {
		if isHex(s[i]) {
			run++
			continue
		}
		flush(i)
	}
	flush(len(s))
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Error returns err's text redacted.
func Error(err error) string {
	if err == nil {
		return ""
	}
	return Text(err.Error())
}

// Attr redacts one log attribute: a secret-named key masks its value,
// strings are redacted with Text, groups member by member, and any other
// value (errors, Stringers, structs, maps) is turned into its redacted
// text, its JSON form when it has one.
func Attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if SecretKey(a.Key) && !(v.Kind() == slog.KindString && v.String() == "") {
		return slog.String(a.Key, Mask)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Text(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]slog.Attr, len(attrs))
		for i, g := range attrs {
			out[i] = Attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		return slog.String(a.Key, anyText(v.Any()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func anyText(v any) string {
	switch x := v.(type) {
	case nil:
		return "<nil>"
	case error:
		return Text(x.Error())
	case fmt.Stringer:
		return Text(x.String())
	case []byte:
		return Text(string(x))
	}
	if data, err := json.Marshal(v); err == nil {
		return Text(string(data))
	}
	return Text(fmt.Sprintf("%+v", v))
}

// handler is a slog.Handler that redacts the message and every attribute
// before its next handler sees them.
type handler struct{ next slog.Handler }

// Handler wraps next so that nothing it logs holds a secret: the message
// goes through Text and every attribute through Attr. A handler that
// redacts already, and slog.DiscardHandler, are returned as they are.
func Handler(next slog.Handler) slog.Handler {
	if _, ok := next.(*handler); ok || next == slog.DiscardHandler {
		return next
	}
	return &handler{next: next}
}

// Logger returns l with its handler wrapped by Handler; nil stays nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return nil
	}
	h := Handler(l.Handler())
	if h == l.Handler() {
		return l
	}
	return slog.New(h)
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(Attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = Attr(a)
	}
	return &handler{next: h.next.WithAttrs(out)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name)}
}

// writer redacts what it writes; see Writer.
type writer struct{ w io.Writer }

// Writer returns w with the text of every Write redacted by Text. It
// redacts each Write on its own, so writers of whole lines or records
// (fmt.Fprintf, slog's handlers) never split a secret between two.
func Writer(w io.Writer) io.Writer {
	if _, ok := w.(writer); ok {
		return w
	}
	return writer{w: w}
}

func (x writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(x.w, Text(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
