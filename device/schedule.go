package device

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// SourceSchedule is the source a change made by a schedule job reports
// (protocol section 15.6).
const SourceSchedule = "schedule"

// Schedule limits: jobs and calls as the firmware documents them; the
// sizes bound what a device stores.
const (
	maxJobs       = 20
	maxJobCalls   = 5
	maxCallMethod = 128  // bytes of a call's method name
	maxCallParams = 4096 // bytes of a call's params
)

// maxArm bounds how long the schedule timer sleeps before it looks at the
// clock again, so a clock that was set or a time zone rule that changed
// is caught up with.
const maxArm = time.Hour

// scheduleService is Schedule.* (protocol section 15.6): jobs stored with
// their revision, and run on the host clock in sys.location.tz, each call
// dispatched as a local request with source "schedule". A device holds one
// timer at most, and only while it runs and has an enabled job.
type scheduleService struct{}

func (scheduleService) name() string { return "schedules" }

var scheduleMethods = []serviceMethod{
	{"Schedule.Create", scheduleCreate},
	{"Schedule.Delete", scheduleDelete},
	{"Schedule.DeleteAll", scheduleDeleteAll},
	{"Schedule.List", scheduleList},
	{"Schedule.Update", scheduleUpdate},
}

func (scheduleService) register(p *Model, handle func(string, handler)) {
	if !hasSchedules(p) {
		return
	}
	registerMethods(p, handle, scheduleMethods)
}

// hasSchedules reports whether devices of p have the Schedule service:
// where the dump has a captured Shelly.ListMethods, when it lists
// Schedule.List; otherwise on models that are always on and report
// sys.schedule_rev.
func hasSchedules(p *Model) bool {
	if p.Methods != nil {
		return listed(p.Methods, "Schedule.List")
	}
	return p.Status.Object("sys").Has("schedule_rev") && p.WakeupPeriod() == 0
}

func (scheduleService) load(d *Device, raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var st scheduleState
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	for _, j := range st.Jobs {
		if j == nil {
			return fmt.Errorf("a stored job is unusable")
		}
		// A timespec this version cannot read keeps its job, which then
		// never runs.
		j.spec, _ = parseTimespec(j.Timespec)
	}
	d.schedules = &st
	return nil
}

func (scheduleService) saveLocked(d *Device) (json.RawMessage, error) {
	if d.schedules == nil {
		return nil, nil
	}
	return json.Marshal(d.schedules)
}

func (scheduleService) sysLocked(d *Device, set func(string, any)) {
	if d.schedules != nil {
		set("schedule_rev", d.schedules.Rev)
	}
}

// bootLocked arms the timer again after a reboot (Boot stopped it); at New
// Run arms it when it starts.
func (scheduleService) bootLocked(d *Device, _ time.Time) {
	if d.schedules != nil {
		d.schedules.fired = time.Time{}
		d.armSchedulesLocked()
	}
}

func (scheduleService) stopLocked(d *Device) {
	if st := d.schedules; st != nil {
		d.stopTimerLocked(st.timer)
		st.timer, st.due = nil, nil
	}
}

// scheduleState is a device's jobs and schedule_rev; nil while it has
// never had a job (schedule_rev is then the dump's).
type scheduleState struct {
	Rev  int    `json:"rev"`
	Jobs []*job `json:"jobs"`

	timer   *time.Timer // armed for planned; nil when idle
	planned time.Time   // when the jobs in due run
	due     []int       // their ids
	capped  bool        // the timer wakes at maxArm, before planned
	fired   time.Time   // the last planned time run: never run twice
}

// job is one schedule job as stored and listed.
type job struct {
	ID       int       `json:"id"`
	Enable   bool      `json:"enable"`
	Timespec string    `json:"timespec"`
	Calls    []jobCall `json:"calls"`
	spec     *timespec // nil: never runs
}

// jobCall is one RPC call of a job.
type jobCall struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params,omitempty"`
}

func cloneJobs(jobs []*job) []*job {
	out := make([]*job, len(jobs))
	for i, j := range jobs {
		c := *j
		out[i] = &c
	}
	return out
}

// scheduleRevLocked is schedule_rev now.
func (d *Device) scheduleRevLocked() int {
	if d.schedules != nil {
		return d.schedules.Rev
	}
	rev, _ := d.p.Status.Object("sys").Number("schedule_rev")
	return int(rev)
}

// storeJobsLocked stores jobs with schedule_rev up by one, then makes them
// the device's and arms the timer for them; a refused save changes
// nothing. It returns the new revision.
func (d *Device) storeJobsLocked(jobs []*job) (int, error) {
	st := &scheduleState{Rev: d.scheduleRevLocked() + 1, Jobs: jobs}
	raw, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	if err := d.saveSectionLocked(scheduleService{}.name(), raw); err != nil {
		return 0, err
	}
	if old := d.schedules; old != nil {
		d.stopTimerLocked(old.timer)
		st.fired = old.fired
	}
	d.schedules = st
	d.armSchedulesLocked()
	return st.Rev, nil
}

// jobParams are Schedule.Create's and Update's params.
type jobParams struct {
	ID       *int            `json:"id"`
	Enable   *bool           `json:"enable"`
	Timespec *string         `json:"timespec"`
	Calls    json.RawMessage `json:"calls"`
}

// apply checks p and sets what it gives on j.
func (p *jobParams) apply(j *job) error {
	if p.Enable != nil {
		j.Enable = *p.Enable
	}
	if p.Timespec != nil {
		spec, err := parseTimespec(*p.Timespec)
		if err != nil {
			return shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'timespec': %v", err)
		}
		j.Timespec, j.spec = *p.Timespec, spec
	}
	if p.Calls != nil {
		calls, err := parseCalls(p.Calls)
		if err != nil {
			return err
		}
		j.Calls = calls
	}
	return nil
}

// parseCalls checks a job's calls: 1 to 5 objects, each with a method
// and, if any, object params, of bounded sizes.
func parseCalls(raw json.RawMessage) ([]jobCall, error) {
	bad := func(why string) error {
		return shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'calls': %s", why)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return nil, bad("must be an array of calls")
	}
	if len(list) == 0 || len(list) > maxJobCalls {
		return nil, bad(fmt.Sprintf("must hold 1 to %d calls", maxJobCalls))
	}
	calls := make([]jobCall, 0, len(list))
	for _, c := range list {
		var call struct {
			Method *string         `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.Unmarshal(c, &call); err != nil {
			return nil, bad("each call must be an object with a 'method'")
		}
		if call.Method == nil || *call.Method == "" {
			return nil, bad("each call needs a 'method'")
		}
		if len(*call.Method) > maxCallMethod || len(call.Params) > maxCallParams {
			return nil, bad(fmt.Sprintf("a method name takes at most %d bytes and params at most %d", maxCallMethod, maxCallParams))
		}
		params := call.Params
		if string(params) == "null" {
			params = nil
		}
		if params != nil {
			if v, err := jsonv.Parse(params); err != nil {
				return nil, bad("'params' is not valid JSON")
			} else if _, ok := v.(*jsonv.Object); !ok {
				return nil, bad("'params' must be an object")
			}
			params = append(json.RawMessage(nil), params...)
		}
		calls = append(calls, jobCall{Method: *call.Method, Params: params})
	}
	return calls, nil
}

// createResult is what Schedule.Create and Webhook.Create answer.
type createResult struct {
	ID  int `json:"id"`
	Rev int `json:"rev"`
}

// revResult is what the other Schedule.* and Webhook.* writes and
// KVS.Delete answer.
type revResult struct {
	Rev int `json:"rev"`
}

// changeJobs is every Schedule.* write: under the device's locks, edit
// makes the new jobs from a copy of the current ones; they are stored
// with schedule_rev up by one, which is reported and returned.
func (d *Device) changeJobs(edit func(jobs []*job) ([]*job, error)) (int, error) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	var jobs []*job
	if d.schedules != nil {
		jobs = cloneJobs(d.schedules.Jobs)
	}
	jobs, err := edit(jobs)
	rev := 0
	if err == nil {
		rev, err = d.storeJobsLocked(jobs)
	}
	d.mu.Unlock()
	if err != nil {
		return 0, err
	}
	d.sysRevChanged("schedule_rev", rev)
	return rev, nil
}

// jobIndex is where the job with id is in jobs, or the firmware's error.
func jobIndex(jobs []*job, id int) (int, error) {
	i := slices.IndexFunc(jobs, func(j *job) bool { return j.ID == id })
	if i < 0 {
		return -1, errNoID(id)
	}
	return i, nil
}

func scheduleCreate(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p jobParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.Timespec == nil {
		return nil, missingArg("timespec")
	}
	if p.Calls == nil {
		return nil, missingArg("calls")
	}
	j := &job{Enable: true}
	if err := p.apply(j); err != nil {
		return nil, err
	}
	rev, err := d.changeJobs(func(jobs []*job) ([]*job, error) {
		if len(jobs) >= maxJobs {
			return nil, shellyws.Errorf(shellyws.CodeResourceExhausted, "Too many schedule jobs: at most %d", maxJobs)
		}
		j.ID = 1
		if len(jobs) > 0 {
			j.ID = jobs[len(jobs)-1].ID + 1
		}
		return append(jobs, j), nil
	})
	if err != nil {
		return nil, err
	}
	return createResult{j.ID, rev}, nil
}

func scheduleUpdate(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p jobParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	rev, err := d.changeJobs(func(jobs []*job) ([]*job, error) {
		i, err := jobIndex(jobs, *p.ID)
		if err != nil {
			return nil, err
		}
		return jobs, p.apply(jobs[i])
	})
	if err != nil {
		return nil, err
	}
	return revResult{rev}, nil
}

func scheduleDelete(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	id, err := requiredID(req)
	if err != nil {
		return nil, err
	}
	rev, err := d.changeJobs(func(jobs []*job) ([]*job, error) {
		i, err := jobIndex(jobs, id)
		if err != nil {
			return nil, err
		}
		return slices.Delete(jobs, i, i+1), nil
	})
	if err != nil {
		return nil, err
	}
	return revResult{rev}, nil
}

func scheduleDeleteAll(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
	rev, err := d.changeJobs(func([]*job) ([]*job, error) { return []*job{}, nil })
	if err != nil {
		return nil, err
	}
	return revResult{rev}, nil
}

func scheduleList(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	res := struct {
		Jobs []*job `json:"jobs"`
		Rev  int    `json:"rev"`
	}{Jobs: []*job{}, Rev: d.scheduleRevLocked()}
	if d.schedules != nil {
		res.Jobs = cloneJobs(d.schedules.Jobs)
	}
	return res, nil
}

// locationLocked is the device's sys.location config: stored, or the
// dump's.
func (d *Device) locationLocked() *jsonv.Object {
	return d.configLocked("sys").Object("location")
}

// placeLocked is the device's sys.location: its time zone (UTC for null
// or a zone the host does not know) and its coordinates, if set.
func (d *Device) placeLocked() place {
	loc := d.locationLocked()
	tz, _ := loc.String("tz")
	p := place{loc: zone(tz)}
	lat, ok1 := loc.Number("lat")
	lon, ok2 := loc.Number("lon")
	if ok1 && ok2 && lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180 {
		p.lat, p.lon, p.coords = lat, lon, true
	}
	return p
}

// armSchedulesLocked arms the device's one schedule timer for the next
// run of its enabled jobs, after the last one run; none while Run does not
// run, for a sleeping device, or without a job to run.
func (d *Device) armSchedulesLocked() {
	st := d.schedules
	if st == nil {
		return
	}
	d.stopTimerLocked(st.timer)
	st.timer, st.due = nil, nil
	if !d.running || d.sleeping() {
		return
	}
	now := d.now()
	from := now
	if st.fired.After(from) {
		from = st.fired
	}
	var at time.Time
	var due []int
	var p *place
	for _, j := range st.Jobs {
		if !j.Enable || j.spec == nil {
			continue
		}
		if p == nil {
			pl := d.placeLocked()
			p = &pl
		}
		t, ok := j.spec.next(from, *p)
		switch {
		case !ok:
		case at.IsZero() || t.Before(at):
			at, due = t, []int{j.ID}
		case t.Equal(at):
			due = append(due, j.ID)
		}
	}
	if at.IsZero() {
		return
	}
	delay := max(at.Sub(now), 0)
	st.capped = delay > maxArm
	st.planned, st.due = at, due
	st.timer = d.startTimerLocked(min(delay, maxArm), d.scheduleFire)
}

// scheduleFire is the schedule timer firing: the jobs due run, each call
// in order through the device's dispatch, after the timer is armed for
// the next run (a call may change the jobs).
func (d *Device) scheduleFire(self *time.Timer) {
	d.mu.Lock()
	st := d.schedules
	if st == nil || st.timer != self || !d.running {
		d.mu.Unlock()
		return
	}
	st.timer = nil
	if st.capped && d.now().Before(st.planned) {
		d.armSchedulesLocked()
		d.mu.Unlock()
		return
	}
	type run struct {
		id   int
		call jobCall
	}
	var runs []run
	for _, j := range st.Jobs {
		if j.Enable && slices.Contains(st.due, j.ID) {
			for _, c := range j.Calls {
				runs = append(runs, run{j.ID, c})
			}
		}
	}
	st.fired = st.planned
	d.armSchedulesLocked()
	d.mu.Unlock()
	for _, r := range runs {
		req := &shellyws.Request{Src: SourceSchedule, Method: r.call.Method, Params: r.call.Params}
		if _, err := d.dispatch(context.Background(), req); err != nil {
			d.log.Warn("device: a schedule job's call failed", "job", r.id, "method", r.call.Method, "err", err)
		}
	}
}
