package mdns

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Service is what one device announces: its instance under both service
// types, its web server's port and its host's IPv4 addresses. The records
// are those of a real Gen2+ device:
//
//	PTR _shelly._tcp.local. -> <Instance>._shelly._tcp.local.
//	SRV <Instance>._shelly._tcp.local. 0 0 <Port> <Host>.local.
//	TXT <Instance>._shelly._tcp.local. "gen=<Gen>" "app=<App>" "ver=<Ver>"
//	PTR _http._tcp.local. -> <Instance>._http._tcp.local.
//	SRV <Instance>._http._tcp.local. 0 0 <Port> <Host>.local.
//	TXT <Instance>._http._tcp.local. "gen=<Gen>"
//	A   <Host>.local. <Addrs>        (cache-flush)
//
// all with TTL 120, and _services._dns-sd._udp.local. pointing to both
// types.
type Service struct {
	// Instance is the device id, as Shelly.GetDeviceInfo says it
	// ("shellypro3em-a0dd6ca0c27c"; the Wall Display's is
	// "ShellyWallDisplay-00082261E102"): one DNS label, at most 63 bytes,
	// no dot. Unique within a Responder, case-insensitively.
	Instance string
	// Host is the host label without ".local", letters, digits and '-'.
	// Empty means HostName(Instance), as real devices answer.
	Host string
	// Port is the device's web server port (80 on a real device).
	Port int
	// Addrs are the IPv4 addresses of the A records. Empty means the
	// Responder's own (the interface's for Listen, WithAddrs for New).
	Addrs []netip.Addr
	// Gen, App and Ver are Shelly.GetDeviceInfo's gen, app and ver, the
	// TXT values.
	Gen      int
	App, Ver string
}

// announcements is how many unsolicited answers an Add sends, spaced by
// announceGap (RFC 6762 section 8.3 asks for at least two, one second
// apart).
const (
	announcements = 2
	announceGap   = time.Second
)

// entry is a Service as a Responder holds it: immutable once added, but
// for the announcement state (guarded by Responder.mu) and removed.
type entry struct {
	instance string
	host     string
	port     uint16
	addrs    []netip.Addr // shared with the Responder's defaults when none were given
	txt      []string     // "gen=", "app=", "ver="; interned, shared by devices alike
	idx      int          // position in Responder.order

	annLeft uint8         // announcements still to send
	annAt   time.Duration // when the next is due, on the Responder's clock
	removed atomic.Bool   // set before its goodbye goes out; packers skip it
}

// check validates s and returns its host label.
func (s *Service) check() (host string, err error) {
	if s.Instance == "" || len(s.Instance) > 63 {
		return "", fmt.Errorf("mdns: instance %q: 1 to 63 bytes", s.Instance)
	}
	if !utf8.ValidString(s.Instance) || strings.ContainsFunc(s.Instance, func(r rune) bool { return r == '.' || r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("mdns: instance %q: one DNS label, no dot or control character", s.Instance)
	}
	host = s.Host
	if host == "" {
		host = HostName(s.Instance)
	}
	if len(host) > 63 || strings.ContainsFunc(host, func(r rune) bool {
		return !(r == '-' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z')
	}) {
		return "", fmt.Errorf("mdns: %s: host %q: at most 63 letters, digits or '-'", s.Instance, host)
	}
	if s.Port < 1 || s.Port > 65535 {
		return "", fmt.Errorf("mdns: %s: port %d out of range", s.Instance, s.Port)
	}
	for _, a := range s.Addrs {
		if !unicastIPv4(a) {
			return "", fmt.Errorf("mdns: %s: address %v: want a unicast IPv4 address (leave Addrs empty for the responder's)", s.Instance, a.Unmap())
		}
	}
	if s.Gen < 1 || s.Gen > 99 {
		return "", fmt.Errorf("mdns: %s: gen %d out of range", s.Instance, s.Gen)
	}
	if s.App == "" || s.Ver == "" || len(s.App) > 200 || len(s.Ver) > 200 {
		return "", fmt.Errorf("mdns: %s: app and ver: 1 to 200 bytes each", s.Instance)
	}
	return host, nil
}

// unicastIPv4 reports whether a (an IPv4-mapped one too) may be an A
// record's address.
func unicastIPv4(a netip.Addr) bool {
	a = a.Unmap()
	return a.Is4() && !a.IsUnspecified() && !a.IsMulticast()
}

// txtKey is the interning key of a TXT set.
func (s *Service) txtKey() string {
	return strconv.Itoa(s.Gen) + "\x00" + s.App + "\x00" + s.Ver
}

// changed returns the kinds of e's records that o, its replacement,
// carries with other data.
func (e *entry) changed(o *entry) (kinds uint16) {
	if e.host != o.host || e.port != o.port {
		kinds |= kSRVShelly | kSRVHTTP
	}
	if e.host != o.host || !slices.Equal(e.addrs, o.addrs) {
		kinds |= kA
	}
	if !slices.Equal(e.txt, o.txt) {
		kinds |= kTXTShelly
	}
	if e.txt[0] != o.txt[0] {
		kinds |= kTXTHTTP
	}
	return kinds
}
