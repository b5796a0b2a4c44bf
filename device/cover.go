package device

import (
	"context"
	"math"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// Cover states, as the firmware names them.
const (
	stateOpen    = "open"
	stateClosed  = "closed"
	stateOpening = "opening"
	stateClosing = "closing"
	stateStopped = "stopped"
)

// Cover is a roller shutter moving over time; guarded by Device.mu.
type Cover struct {
	k        string
	id       int
	st       *jsonv.Object
	openT    time.Duration // full travel up and down, from the config
	closeT   time.Duration
	posCtl   bool // the dump reports a position (calibrated)
	initPos  float64
	initStat string

	state     string
	source    string
	pos       float64 // 0 closed … 100 open
	target    float64
	lastDir   any // the dump's (maybe null) until the cover moves
	moving    int // +1 opening, -1 closing, 0 still
	fromPos   float64
	moveStart time.Time
	timer     *time.Timer // next step of the movement
}

func newCover(key string, id int, st, cfg *jsonv.Object) *Cover {
	c := &Cover{k: key, id: id, st: st, source: SourceInit, openT: 60 * time.Second, closeT: 60 * time.Second}
	if v, ok := cfg.Number("maxtime_open"); ok && v > 0 {
		c.openT = time.Duration(v * float64(time.Second))
	}
	if v, ok := cfg.Number("maxtime_close"); ok && v > 0 {
		c.closeT = time.Duration(v * float64(time.Second))
	}
	c.initPos, c.posCtl = st.Number("current_pos")
	c.initStat, _ = st.String("state")
	switch c.initStat {
	case stateOpening, stateClosing, "":
		c.initStat = stateStopped
	}
	c.lastDir, _ = st.Get("last_direction")
	if src, ok := st.String("source"); ok {
		c.source = src
	}
	c.pos, c.state = c.initPos, c.initStat
	return c
}

func (c *Cover) key() string { return c.k }

// travel is how long a full run in direction dir takes.
func (c *Cover) travel(d *Device, dir int) time.Duration {
	if d.coverTravel > 0 {
		return d.coverTravel
	}
	if dir > 0 {
		return c.openT
	}
	return c.closeT
}

// posLocked is the position at now, moving or not.
func (c *Cover) posLocked(d *Device, now time.Time) float64 {
	if c.moving == 0 {
		return c.pos
	}
	moved := 100 * float64(now.Sub(c.moveStart)) / float64(c.travel(d, c.moving))
	p := c.fromPos + float64(c.moving)*moved
	if c.moving > 0 {
		return math.Min(p, c.target)
	}
	return math.Max(p, c.target)
}

func (c *Cover) patchLocked(d *Device, now time.Time) jsonv.Patch {
	p := jsonv.Patch{{Key: "state", Val: c.state}, {Key: "source", Val: c.source}}
	if c.posCtl {
		p = append(p, jsonv.Field{Key: "current_pos", Val: math.Round(c.posLocked(d, now))})
		if c.moving != 0 {
			p = append(p, jsonv.Field{Key: "target_pos", Val: c.target})
		}
	}
	if c.moving != 0 {
		p = append(p, jsonv.Field{Key: "move_started_at", Val: unixTS(c.moveStart)})
	}
	if c.st.Has("last_direction") {
		p = append(p, jsonv.Field{Key: "last_direction", Val: c.lastDir})
	}
	drift := d.driftLocked(c.k, c.st)
	for _, f := range drift {
		p = setField(p, f.Key, f.Val)
	}
	if c.st.Has("apower") {
		apower := 0.0
		if c.moving != 0 {
			apower = d.load
		}
		p = setField(p, "apower", apower)
		if voltage, ok := c.st.Number("voltage"); ok && voltage > 0 && c.st.Has("current") {
			p = setField(p, "current", round(apower/voltage, 3))
		}
	}
	return p
}

func (c *Cover) readingsLocked(d *Device, _ time.Time) jsonv.Patch {
	return withID(c.st, d.driftLocked(c.k, c.st))
}

func (c *Cover) stopLocked(d *Device) {
	if c.moving != 0 {
		c.pos = math.Round(c.posLocked(d, d.now()))
		c.moving = 0
		c.state = stateStopped
	}
	d.stopTimerLocked(c.timer)
	c.timer = nil
}

func (c *Cover) bootLocked(*Device) { c.source = SourceInit }

// stepOf is how often a moving cover reports its position: every tenth of
// a full run, at least every second.
func (c *Cover) stepOf(d *Device) time.Duration {
	return max(min(c.travel(d, c.moving)/10, time.Second), time.Millisecond)
}

// moveLocked starts a movement towards target and returns the delta that
// announces it; nil when the cover is already there.
func (d *Device) moveLocked(c *Cover, source string, target float64, now time.Time) map[string]any {
	cur := c.posLocked(d, now)
	d.stopTimerLocked(c.timer)
	c.timer = nil
	c.source = source
	c.moving = 0
	c.pos = cur
	if target == cur {
		c.state = stateAt(cur)
		return map[string]any{c.k: map[string]any{"id": c.id, "state": c.state, "source": c.source}}
	}
	c.moving, c.lastDir, c.state = 1, "open", stateOpening
	if target < cur {
		c.moving, c.lastDir, c.state = -1, "close", stateClosing
	}
	c.fromPos, c.target, c.moveStart = cur, target, now
	c.timer = d.startTimerLocked(c.stepOf(d), func(self *time.Timer) { d.coverStep(c, self) })
	delta := map[string]any{"id": c.id, "state": c.state, "source": c.source, "move_started_at": unixTS(now)}
	if c.posCtl {
		delta["target_pos"] = target
	}
	return map[string]any{c.k: delta}
}

// stateAt is the state of a cover resting at pos.
func stateAt(pos float64) string {
	switch pos {
	case 100:
		return stateOpen
	case 0:
		return stateClosed
	}
	return stateStopped
}

// coverStep reports a moving cover's position, and its arrival.
func (d *Device) coverStep(c *Cover, self *time.Timer) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if c.timer != self || !d.running {
		d.mu.Unlock()
		return
	}
	now := d.now()
	pos := c.posLocked(d, now)
	delta := map[string]any{"id": c.id}
	if c.posCtl {
		delta["current_pos"] = math.Round(pos)
	}
	if pos == c.target {
		c.pos, c.moving, c.timer = pos, 0, nil
		c.state = stateAt(pos)
		delta["state"] = c.state
		delta["last_direction"] = c.lastDir
		if c.st.Has("apower") {
			delta["apower"] = 0.0
		}
	} else {
		c.timer = d.startTimerLocked(c.stepOf(d), func(self *time.Timer) { d.coverStep(c, self) })
	}
	d.mu.Unlock()
	d.notify(map[string]any{c.k: delta})
}

// coverOf returns the cover a request names, with its params decoded into
// p.
func (d *Device) coverOf(req *shellyws.Request) (*Cover, error) {
	key, err := d.keyOf("cover", true, req)
	if err != nil {
		return nil, err
	}
	c, _ := d.partOf(key).(*Cover)
	if c == nil {
		return nil, shellyws.Errorf(shellyws.CodeNotFound, "Bad id for %s", key)
	}
	return c, nil
}

// coverRun moves c towards target, or for duration seconds when given.
func (d *Device) coverRun(req *shellyws.Request, dir int) (any, error) {
	c, err := d.coverOf(req)
	if err != nil {
		return nil, err
	}
	var p struct {
		Duration *float64 `json:"duration"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.Duration != nil && (*p.Duration <= 0 || *p.Duration > 86400) {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'duration': must be seconds in (0, 86400]")
	}
	return d.coverMove(c, sourceOf(req), func(cur float64) float64 {
		target := 100.0
		if dir < 0 {
			target = 0
		}
		if p.Duration != nil {
			moved := 100 * *p.Duration * float64(time.Second) / float64(c.travel(d, dir))
			target = math.Max(0, math.Min(100, cur+float64(dir)*moved))
		}
		return target
	})
}

// coverMove starts c towards target(current position).
func (d *Device) coverMove(c *Cover, source string, target func(cur float64) float64) (any, error) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if !d.running {
		d.mu.Unlock()
		return nil, errNotRunning
	}
	now := d.now()
	delta := d.moveLocked(c, source, target(c.posLocked(d, now)), now)
	d.mu.Unlock()
	d.notify(delta)
	return nil, nil
}

func coverOpen(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	return d.coverRun(req, 1)
}

func coverClose(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	return d.coverRun(req, -1)
}

func coverStop(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	c, err := d.coverOf(req)
	if err != nil {
		return nil, err
	}
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	c.stopLocked(d)
	c.state, c.source = stateStopped, sourceOf(req)
	delta := map[string]any{"id": c.id, "state": c.state, "source": c.source}
	if c.posCtl {
		delta["current_pos"] = math.Round(c.pos)
	}
	d.mu.Unlock()
	d.notify(map[string]any{c.k: delta})
	return nil, nil
}

func coverGoTo(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	c, err := d.coverOf(req)
	if err != nil {
		return nil, err
	}
	var p struct {
		Pos *float64 `json:"pos"`
		Rel *float64 `json:"rel"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	switch {
	case !c.posCtl:
		return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "Cover is not calibrated")
	case p.Pos == nil && p.Rel == nil:
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Missing required argument 'pos' or 'rel'!")
	case p.Pos != nil && p.Rel != nil:
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Give 'pos' or 'rel', not both")
	case p.Pos != nil && (*p.Pos < 0 || *p.Pos > 100):
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'pos': must be 0 to 100")
	case p.Rel != nil && (*p.Rel < -100 || *p.Rel > 100):
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'rel': must be -100 to 100")
	}
	return d.coverMove(c, sourceOf(req), func(cur float64) float64 {
		if p.Pos != nil {
			return math.Round(*p.Pos)
		}
		return math.Max(0, math.Min(100, math.Round(cur+*p.Rel)))
	})
}
