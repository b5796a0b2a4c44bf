package mdns

import (
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Bounds on the work one query causes.
const (
	maxQuestions = 32  // questions answered per query; the rest are ignored
	maxKnown     = 256 // known answers read per query
	// unicastBrowses is how many browses per second get a unicast answer
	// (QU questions); beyond it they are answered by multicast, which
	// RFC 6762 section 5.4 allows and the one-second rule bounds.
	unicastBrowses = 8
	// multicastGap is RFC 6762 section 6's one second between two
	// multicasts of a record, kept per browsed type.
	multicastGap = time.Second
	quBit        = 0x8000
)

// rateLimits bounds the browses answered, the only answers whose size
// grows with the fleet. Reader goroutine only.
type rateLimits struct {
	lastMC   [3]time.Duration // per browse kind (services, _shelly, _http): last multicast answer
	sentMC   [3]bool
	ucWindow time.Duration // start of the current second of unicast browses
	ucCount  int
}

// plan is what one destination gets in answer to a query.
type plan struct {
	svc     bool   // _services._dns-sd._udp PTRs
	browse  uint16 // kPTRShelly, kPTRHTTP: every device's
	singles []group
}

func (pl *plan) empty() bool { return !pl.svc && pl.browse == 0 && len(pl.singles) == 0 }

// handle answers one datagram, if it is a query for a name the responder
// holds.
func (r *Responder) handle(msg []byte, src netip.AddrPort) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response || h.OpCode != 0 || h.RCode != dnsmessage.RCodeSuccess {
		return
	}
	var qs []dnsmessage.Question
	for len(qs) < maxQuestions {
		q, err := p.Question()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			return
		}
		qs = append(qs, q)
	}
	if len(qs) == 0 || p.SkipAllQuestions() != nil {
		return
	}
	legacy := src.Port() != r.mdnsPort

	var uc, mc plan
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return
	}
	for _, q := range qs {
		dst := &mc
		if legacy || q.Class&quBit != 0 {
			dst = &uc
		}
		r.classify(q, dst)
	}
	known := r.knownAnswers(&p)
	r.mu.RUnlock()

	if legacy {
		if uc.empty() {
			return
		}
		limit := min(r.maxPacket, max(minPacket, ednsSize(&p)))
		pk := r.newPacker(src, modeLegacy, limit)
		pk.setLegacy(h.ID, qs)
		r.answer(pk, &uc, known)
		pk.flush()
		return
	}
	now := r.clock.Now().Sub(r.epoch)
	if uc.svc || uc.browse != 0 {
		if now-r.limits.ucWindow >= time.Second {
			r.limits.ucWindow, r.limits.ucCount = now, 0
		}
		if r.limits.ucCount++; r.limits.ucCount > unicastBrowses {
			mc.svc, mc.browse = mc.svc || uc.svc, mc.browse|uc.browse
			uc.svc, uc.browse = false, 0
		}
	}
	r.limitMulticast(&mc, now)
	if !uc.empty() {
		pk := r.newPacker(src, modeAnswer, r.maxPacket)
		r.answer(pk, &uc, known)
		pk.flush()
	}
	if !mc.empty() {
		pk := r.newPacker(r.group, modeAnswer, r.maxPacket)
		r.answer(pk, &mc, known)
		pk.flush()
	}
}

// classify adds what q asks for to pl; r.mu is held.
func (r *Responder) classify(q dnsmessage.Question, pl *plan) {
	if c := q.Class &^ quBit; c != dnsmessage.ClassINET && c != dnsmessage.ClassANY {
		return
	}
	t := q.Type
	name := strings.ToLower(q.Name.String())
	if len(r.order) == 0 {
		return
	}
	ptr := t == dnsmessage.TypePTR || t == dnsmessage.TypeALL
	switch name {
	case suffixes[sfxServices].name:
		pl.svc = pl.svc || ptr
		return
	case suffixes[sfxShelly].name:
		if ptr {
			pl.browse |= kPTRShelly
		}
		return
	case suffixes[sfxHTTP].name:
		if ptr {
			pl.browse |= kPTRHTTP
		}
		return
	}
	for _, s := range [...]int8{sfxShelly, sfxHTTP} {
		inst, ok := strings.CutSuffix(name, "."+suffixes[s].name)
		if !ok {
			continue
		}
		e := r.byInst[inst]
		if e == nil {
			return
		}
		srv, txt := kSRVShelly, kTXTShelly
		if s == sfxHTTP {
			srv, txt = kSRVHTTP, kTXTHTTP
		}
		switch t {
		case dnsmessage.TypeSRV: // RFC 6763 section 12.2: the address goes along
			pl.singles = append(pl.singles, group{e: e, ans: srv, add: kA})
		case dnsmessage.TypeTXT:
			pl.singles = append(pl.singles, group{e: e, ans: txt})
		case dnsmessage.TypeALL:
			pl.singles = append(pl.singles, group{e: e, ans: srv | txt, add: kA})
		}
		return
	}
	if host, ok := strings.CutSuffix(name, ".local."); ok && (t == dnsmessage.TypeA || t == dnsmessage.TypeALL) {
		if e := r.byHost[host]; e != nil {
			pl.singles = append(pl.singles, group{e: e, ans: kA})
		}
	}
}

// knownAnswers reads the query's known answers (RFC 6762 section 7.1): the
// PTR records the querier holds with at least half their TTL left, as the
// kinds to leave out per device (nil: the responder's _services PTRs).
// r.mu is held.
func (r *Responder) knownAnswers(p *dnsmessage.Parser) map[*entry]uint16 {
	var known map[*entry]uint16
	for range maxKnown {
		h, err := p.AnswerHeader()
		if err != nil {
			break
		}
		if h.Type != dnsmessage.TypePTR || h.TTL < ttlNormal/2 {
			if p.SkipAnswer() != nil {
				break
			}
			continue
		}
		ptr, err := p.PTRResource()
		if err != nil {
			break
		}
		owner, target := strings.ToLower(h.Name.String()), strings.ToLower(ptr.PTR.String())
		var e *entry
		var k uint16
		switch owner {
		case suffixes[sfxServices].name:
			switch target {
			case suffixes[sfxShelly].name:
				k = kSvcShelly
			case suffixes[sfxHTTP].name:
				k = kSvcHTTP
			}
		case suffixes[sfxShelly].name, suffixes[sfxHTTP].name:
			if inst, ok := strings.CutSuffix(target, "."+owner); ok {
				e, k = r.byInst[inst], kPTRShelly
				if owner == suffixes[sfxHTTP].name {
					k = kPTRHTTP
				}
			}
		}
		if k != 0 && (e != nil || k&(kSvcShelly|kSvcHTTP) != 0) {
			if known == nil {
				known = map[*entry]uint16{}
			}
			known[e] |= k
		}
	}
	return known
}

// ednsSize is the UDP payload size a legacy querier's EDNS(0) OPT record
// offers (RFC 6891), 0 without one.
func ednsSize(p *dnsmessage.Parser) int {
	if p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return 0
	}
	for range maxKnown {
		h, err := p.AdditionalHeader()
		if err != nil {
			return 0
		}
		if h.Type == dnsmessage.TypeOPT {
			return int(h.Class)
		}
		if p.SkipAdditional() != nil {
			return 0
		}
	}
	return 0
}

// limitMulticast drops from pl the browses multicast less than a second
// ago, and notes the others as sent now.
func (r *Responder) limitMulticast(pl *plan, now time.Duration) {
	kinds := [3]uint16{0, kPTRShelly, kPTRHTTP}
	for i, k := range kinds {
		asked := pl.browse&k != 0
		if i == 0 {
			asked = pl.svc
		}
		if !asked {
			continue
		}
		if r.limits.sentMC[i] && now-r.limits.lastMC[i] < multicastGap {
			if i == 0 {
				pl.svc = false
			} else {
				pl.browse &^= k
			}
			continue
		}
		r.limits.sentMC[i], r.limits.lastMC[i] = true, now
	}
}

// answer packs pl into pk: the responder's _services PTRs, the single
// devices asked for, then every device for each browsed type, each with
// its SRV, TXT and A as additional records.
func (r *Responder) answer(pk *packer, pl *plan, known map[*entry]uint16) {
	if pl.svc {
		pk.add(group{ans: (kSvcShelly | kSvcHTTP) &^ known[nil]})
	}
	for _, g := range pl.singles {
		pk.add(g)
	}
	if pl.browse == 0 {
		return
	}
	r.mu.RLock()
	r.scratch = append(r.scratch[:0], r.order...)
	r.mu.RUnlock()
	for _, e := range r.scratch {
		ans := pl.browse &^ known[e]
		var add uint16
		if ans&kPTRShelly != 0 {
			add |= kSRVShelly | kTXTShelly | kA
		}
		if ans&kPTRHTTP != 0 {
			add |= kSRVHTTP | kTXTHTTP | kA
		}
		pk.add(group{e: e, ans: ans, add: add})
	}
	clear(r.scratch) // keeps no removed device alive
}
