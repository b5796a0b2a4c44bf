package mdns

import "time"

// clock spaces the announcements; tests replace it.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// announceLoop sends the announcements Add schedules: each service's
// first at once, the next announceGap later. Services that are due
// together share messages, so a fleet added at start costs a message per
// few devices, not one per device.
func (r *Responder) announceLoop() {
	defer r.wg.Done()
	var timer <-chan time.Time
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-timer:
		}
		gs, next := r.due()
		r.sendAll(gs, modeAnswer)
		timer = nil
		if next > 0 {
			timer = r.clock.After(next)
		}
	}
}

// due takes the services whose announcement is due, schedules their next,
// and returns them with the wait until the next one due (0: none).
func (r *Responder) due() (gs []group, next time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now().Sub(r.epoch)
	keep := r.pending[:0]
	for _, e := range r.pending {
		if e.removed.Load() {
			continue
		}
		if e.annAt <= now {
			if len(gs) == 0 {
				gs = append(gs, group{ans: kSvcShelly | kSvcHTTP})
			}
			// As real devices announce: the PTRs answer, the rest is
			// additional.
			gs = append(gs, group{e: e, ans: kPTRShelly | kPTRHTTP, add: kAll &^ (kPTRShelly | kPTRHTTP)})
			e.annLeft--
			e.annAt = now + announceGap
		}
		if e.annLeft > 0 {
			keep = append(keep, e)
			if wait := e.annAt - now; next == 0 || wait < next {
				next = wait
			}
		}
	}
	clear(r.pending[len(keep):])
	r.pending = keep
	return gs, next
}
