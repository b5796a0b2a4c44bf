package mdns

import (
	"net/netip"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Record kinds of one device (or, for the kSvc kinds, of the responder), as
// bits: a group says which go in the answer and which in the additional
// section.
const (
	kPTRShelly uint16 = 1 << iota // _shelly._tcp.local. PTR <instance>._shelly._tcp.local.
	kPTRHTTP                      // _http._tcp.local. PTR <instance>._http._tcp.local.
	kSRVShelly
	kSRVHTTP
	kTXTShelly
	kTXTHTTP
	kA         // <host>.local. A, one record per address
	kSvcShelly // _services._dns-sd._udp.local. PTR _shelly._tcp.local.
	kSvcHTTP   // _services._dns-sd._udp.local. PTR _http._tcp.local.
	kindEnd

	kAll = kPTRShelly | kPTRHTTP | kSRVShelly | kSRVHTTP | kTXTShelly | kTXTHTTP | kA
)

// The fixed name suffixes, as a chain of labels: each suffix is a label
// and the index of its parent suffix (-1: the root).
const (
	sfxLocal = iota
	sfxTCP
	sfxShelly
	sfxHTTP
	sfxUDP
	sfxDNSSD
	sfxServices
)

var suffixes = [...]struct {
	label  string
	parent int8
	name   string // the whole name, with its trailing dot
}{
	sfxLocal:    {"local", -1, "local."},
	sfxTCP:      {"_tcp", sfxLocal, "_tcp.local."},
	sfxShelly:   {"_shelly", sfxTCP, "_shelly._tcp.local."},
	sfxHTTP:     {"_http", sfxTCP, "_http._tcp.local."},
	sfxUDP:      {"_udp", sfxLocal, "_udp.local."},
	sfxDNSSD:    {"_dns-sd", sfxUDP, "_dns-sd._udp.local."},
	sfxServices: {"_services", sfxDNSSD, "_services._dns-sd._udp.local."},
}

const (
	burstPackets = 32
	burstGap     = 2 * time.Millisecond

	ttlNormal  = 120 // what real devices send, for every record
	ttlLegacy  = 10  // RFC 6762 section 6.7: at most 10 s to legacy resolvers
	cacheFlush = 0x8000
	headerLen  = 12
)

// group is the records one device (e nil: the responder) puts in a
// message: the kinds in ans go in the answer section, those in add in the
// additional section.
type group struct {
	e        *entry
	ans, add uint16
}

// mode says how a packer writes its records.
type mode uint8

const (
	modeAnswer  mode = iota // TTL 120, A with cache-flush
	modeGoodbye             // TTL 0
	modeLegacy              // one packet to a legacy resolver: its id and questions, TTL 10, no cache-flush, TC when cut
)

// simKey is a name suffix in a packer's compression simulation: a leading
// label (empty for a fixed suffix) on a fixed suffix.
type simKey struct {
	label string
	sfx   int8
}

// packer fills messages with groups, as many as fit in limit bytes, and
// writes each when the next group does not fit. Its size accounting
// mirrors dnsmessage's name compression exactly (a test checks it), so
// packets are as full as they can be; a message that still comes out too
// large is split in two.
type packer struct {
	r     *Responder
	dst   netip.AddrPort
	mode  mode
	limit int

	// modeLegacy only.
	id        uint16
	questions []dnsmessage.Question
	truncated bool

	groups []group
	size   int
	seen   map[simKey]struct{}
	undo   []simKey
	dedup  map[rec]struct{}
	buf    []byte
	sent   int // packets written
}

type rec struct {
	e    *entry
	kind uint16
}

func (r *Responder) newPacker(dst netip.AddrPort, m mode, limit int) *packer {
	return &packer{r: r, dst: dst, mode: m, limit: limit, size: headerLen,
		seen: map[simKey]struct{}{}, dedup: map[rec]struct{}{}}
}

// setLegacy makes p answer a legacy query: its id, its questions echoed.
func (p *packer) setLegacy(id uint16, qs []dnsmessage.Question) {
	p.id, p.questions = id, qs
	for _, q := range qs {
		// An upper bound: the questions' names are not entered in the
		// simulated compression table.
		p.size += int(q.Name.Length) + 1 + 4
	}
}

// add puts g in the current message, writing that message first when g
// does not fit. A group too large for an empty message loses its
// additional records.
func (p *packer) add(g group) {
	if g.ans|g.add == 0 || p.truncated || p.mode != modeGoodbye && p.r.closing() {
		return
	}
	n := p.cost(g)
	if p.size+n > p.limit {
		p.rollback()
		if p.mode == modeLegacy {
			p.truncated = true
			return
		}
		if len(p.groups) > 0 {
			p.flush()
		}
		if n = p.cost(g); p.size+n > p.limit {
			p.rollback()
			g.add = 0
			if n = p.cost(g); p.size+n > p.limit {
				p.rollback()
				p.r.logf("mdns: %d-byte packet limit too small for the records of %q", p.limit, g.e.instance)
				return
			}
		}
	}
	p.undo = p.undo[:0]
	p.size += n
	p.groups = append(p.groups, g)
}

// cost is what g adds to the current message, its names entered in the
// simulated compression table (undone by rollback).
func (p *packer) cost(g group) int {
	n := 0
	for k := uint16(1); k < kindEnd; k <<= 1 {
		if (g.ans|g.add)&k != 0 {
			n += p.recCost(g.e, k)
		}
	}
	return n
}

func (p *packer) rollback() {
	for _, k := range p.undo {
		delete(p.seen, k)
	}
	p.undo = p.undo[:0]
}

// nameCost is the packed size of label.<suffix> with compression, as
// dnsmessage packs it: every suffix not yet in the message is written and
// remembered, the first one already there becomes a 2-byte pointer.
func (p *packer) nameCost(label string, sfx int8) int {
	n := 0
	if label != "" {
		k := simKey{label, sfx}
		if _, ok := p.seen[k]; ok {
			return 2
		}
		p.seen[k] = struct{}{}
		p.undo = append(p.undo, k)
		n += 1 + len(label)
	}
	for s := sfx; s >= 0; s = suffixes[s].parent {
		k := simKey{"", s}
		if _, ok := p.seen[k]; ok {
			return n + 2
		}
		p.seen[k] = struct{}{}
		p.undo = append(p.undo, k)
		n += 1 + len(suffixes[s].label)
	}
	return n + 1
}

const rrFixed = 10 // type, class, TTL, data length

func (p *packer) recCost(e *entry, k uint16) int {
	switch k {
	case kPTRShelly, kPTRHTTP:
		s := typeSfx(k)
		return p.nameCost("", s) + rrFixed + p.nameCost(e.instance, s)
	case kSRVShelly, kSRVHTTP:
		// The SRV target is never compressed (RFC 2782), nor remembered.
		return p.nameCost(e.instance, typeSfx(k)) + rrFixed + 6 + len(e.host) + len(".local.") + 1
	case kTXTShelly, kTXTHTTP:
		n := p.nameCost(e.instance, typeSfx(k)) + rrFixed
		for _, t := range txtOf(e, k) {
			n += 1 + len(t)
		}
		return n
	case kA:
		n := 0
		for range e.addrs {
			n += p.nameCost(e.host, sfxLocal) + rrFixed + 4
		}
		return n
	case kSvcShelly, kSvcHTTP:
		return p.nameCost("", sfxServices) + rrFixed + p.nameCost("", typeSfx(k))
	}
	return 0
}

// typeSfx is the service type a kind belongs to.
func typeSfx(k uint16) int8 {
	if k&(kPTRHTTP|kSRVHTTP|kTXTHTTP|kSvcHTTP) != 0 {
		return sfxHTTP
	}
	return sfxShelly
}

// txtOf is the TXT of a kind: _http carries only gen.
func txtOf(e *entry, k uint16) []string {
	if k == kTXTHTTP {
		return e.txt[:1]
	}
	return e.txt
}

// flush writes the current message, if it holds any group.
func (p *packer) flush() {
	if len(p.groups) > 0 {
		p.write(p.groups)
	}
	p.groups = p.groups[:0]
	p.size = headerLen
	clear(p.seen)
	p.undo = p.undo[:0]
}

// write builds one message of gs and sends it; one that comes out over
// the limit (the size accounting was wrong) is split in two. Messages are
// built and sent under sendMu, so none carries a device whose goodbye has
// gone out.
func (p *packer) write(gs []group) {
	p.r.sendMu.Lock()
	msg, n, err := p.build(gs)
	if err == nil && len(msg) > p.limit && len(gs) > 1 && p.mode != modeLegacy {
		p.r.sendMu.Unlock()
		p.write(gs[:len(gs)/2])
		p.write(gs[len(gs)/2:])
		return
	}
	sent := false
	if err == nil && n > 0 { // n == 0: every device in it was removed meanwhile
		if err = p.r.t.WriteTo(msg, p.dst); err == nil {
			p.sent++
			sent = true
		}
	}
	p.r.sendMu.Unlock()
	if err != nil {
		p.r.logf("mdns: a message to %v: %v", p.dst, err)
	}
	if sent && p.sent%burstPackets == 0 {
		// A fleet's answer is paced, as a fleet of real devices spreads
		// its answers over 20-120 ms (RFC 6762 section 6), so receivers'
		// socket buffers keep up.
		time.Sleep(burstGap)
	}
}

// build packs gs into p.buf; n is the number of records written.
func (p *packer) build(gs []group) (msg []byte, n int, err error) {
	h := dnsmessage.Header{Response: true, Authoritative: true}
	if p.mode == modeLegacy {
		h.ID, h.Truncated = p.id, p.truncated
	}
	b := dnsmessage.NewBuilder(p.buf[:0], h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, 0, err
	}
	for _, q := range p.questions {
		if err := b.Question(q); err != nil {
			return nil, 0, err
		}
	}
	clear(p.dedup)
	if err := b.StartAnswers(); err != nil {
		return nil, 0, err
	}
	for _, g := range gs {
		if n, err = p.emit(&b, g.e, g.ans, n); err != nil {
			return nil, 0, err
		}
	}
	if err := b.StartAdditionals(); err != nil {
		return nil, 0, err
	}
	for _, g := range gs {
		if n, err = p.emit(&b, g.e, g.add, n); err != nil {
			return nil, 0, err
		}
	}
	msg, err = b.Finish()
	p.buf = msg[:0]
	return msg, n, err
}

// emit writes e's records of the kinds in mask, each at most once per
// message (RFC 6762 section 6: nothing twice, nothing of the answer section
// in the additional one).
func (p *packer) emit(b *dnsmessage.Builder, e *entry, mask uint16, n int) (int, error) {
	if mask == 0 || e != nil && e.removed.Load() && p.mode != modeGoodbye {
		return n, nil
	}
	ttl := uint32(ttlNormal)
	switch p.mode {
	case modeGoodbye:
		ttl = 0
	case modeLegacy:
		ttl = ttlLegacy
	}
	hdr := func(name dnsmessage.Name, t dnsmessage.Type, flush bool) dnsmessage.ResourceHeader {
		c := dnsmessage.ClassINET
		if flush && p.mode != modeLegacy {
			c |= cacheFlush
		}
		return dnsmessage.ResourceHeader{Name: name, Type: t, Class: c, TTL: ttl}
	}
	for k := uint16(1); k < kindEnd; k <<= 1 {
		if mask&k == 0 {
			continue
		}
		if _, dup := p.dedup[rec{e, k}]; dup {
			continue
		}
		p.dedup[rec{e, k}] = struct{}{}
		var err error
		switch k {
		case kPTRShelly, kPTRHTTP:
			s := typeSfx(k)
			err = b.PTRResource(hdr(fixedName(s), dnsmessage.TypePTR, false),
				dnsmessage.PTRResource{PTR: labelName(e.instance, s)})
		case kSRVShelly, kSRVHTTP:
			err = b.SRVResource(hdr(labelName(e.instance, typeSfx(k)), dnsmessage.TypeSRV, false),
				dnsmessage.SRVResource{Port: e.port, Target: labelName(e.host, sfxLocal)})
		case kTXTShelly, kTXTHTTP:
			err = b.TXTResource(hdr(labelName(e.instance, typeSfx(k)), dnsmessage.TypeTXT, false),
				dnsmessage.TXTResource{TXT: txtOf(e, k)})
		case kA:
			for i := 0; i < len(e.addrs) && err == nil; i++ {
				err = b.AResource(hdr(labelName(e.host, sfxLocal), dnsmessage.TypeA, true),
					dnsmessage.AResource{A: e.addrs[i].As4()})
			}
			n += len(e.addrs) - 1
		case kSvcShelly, kSvcHTTP:
			err = b.PTRResource(hdr(fixedName(sfxServices), dnsmessage.TypePTR, false),
				dnsmessage.PTRResource{PTR: fixedName(typeSfx(k))})
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// labelName is label.<suffix>, built without allocating.
func labelName(label string, sfx int8) dnsmessage.Name {
	var n dnsmessage.Name
	l := copy(n.Data[:], label)
	l += copy(n.Data[l:], ".")
	l += copy(n.Data[l:], suffixes[sfx].name)
	n.Length = uint8(l)
	return n
}

func fixedName(sfx int8) dnsmessage.Name {
	var n dnsmessage.Name
	n.Length = uint8(copy(n.Data[:], suffixes[sfx].name))
	return n
}
