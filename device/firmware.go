package device

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// DefaultOTATime is how long a simulated update takes; see Options.OTATime.
const DefaultOTATime = 10 * time.Second

// Firmware updates (protocol section 15.2).
const (
	// simBuild ends the fw_id of every version the simulator installs.
	simBuild = "gsim0000"
	// offerBuildDate is the build date Shelly.CheckForUpdate gives an
	// offered version whose offer has no build_id.
	offerBuildDate = "20250101-000000"
	// fwIDTime is the layout of the date part of a fw_id.
	fwIDTime = "20060102-150405"
	// otaSteps is how many ota_progress events an update sends, one per
	// tenth of its time.
	otaSteps = 10
	// otaFetchTimeout bounds the GET of Shelly.Update {"url"}, as the
	// firmware's HTTP client does.
	otaFetchTimeout = 10 * time.Second
	// maxImage is the largest firmware image a url update reads; a real
	// device has no room for more.
	maxImage = 32 << 20
	// maxUpdateURL bounds Shelly.Update's url.
	maxUpdateURL = 2048
	// maxVersion bounds an offered version string.
	maxVersion = 64
)

// stages are the update stages Options and OfferUpdates set, in the order
// of Device.updates.
var stages = [2]string{"stable", "beta"}

// firmwareService is Shelly.CheckForUpdate, Shelly.Update and the
// installed firmware (protocol section 15.2). Every model has them, except
// a dump with a captured Shelly.ListMethods that does not list them.
type firmwareService struct{}

// firmwareState is what a device keeps of its firmware once it differs
// from its model's: an installed version, offers set at run time, an
// update under way. nil until then.
type firmwareState struct {
	ver, fwID string     // running, "" for the model's
	next      *fwVersion // installed, running from the next boot
	offer     [2]*string // set by OfferUpdates (stored); "" offers none
	run       *otaRun    // the update under way
}

// fwVersion is an installed firmware.
type fwVersion struct{ Ver, FwID string }

// firmwareSection is the service's stored section.
type firmwareSection struct {
	Ver    string  `json:"ver,omitempty"`
	FwID   string  `json:"fw_id,omitempty"`
	Stable *string `json:"stable,omitempty"`
	Beta   *string `json:"beta,omitempty"`
}

// otaRun is an update under way: the events and the fetch it runs.
type otaRun struct {
	target  string // the version it installs
	url     string // "" for an update by stage
	start   time.Time
	step    int // ota_progress events sent
	timer   *time.Timer
	cancel  context.CancelFunc // ends the fetch
	ctx     context.Context
	fetched bool   // the url's GET succeeded
	waiting bool   // the last step waits for the GET
	release func() // a sleeping device's HoldAwake; nil for others
}

func (firmwareService) name() string { return "firmware" }

func (firmwareService) register(p *Model, handle func(string, handler)) {
	registerMethods(p, handle, []serviceMethod{
		{"Shelly.CheckForUpdate", checkForUpdateRPC},
		{"Shelly.Update", updateRPC},
	})
}

func (firmwareService) load(d *Device, raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var s firmwareSection
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if (s.Ver == "") != (s.FwID == "") {
		return errors.New("ver and fw_id go together")
	}
	for i, v := range []*string{&s.Ver, s.Stable, s.Beta} {
		if v != nil {
			if err := checkVersion([]string{"installed", "stable", "beta"}[i], *v); err != nil {
				return err
			}
		}
	}
	d.fw = &firmwareState{ver: s.Ver, fwID: s.FwID, offer: [2]*string{s.Stable, s.Beta}}
	for i, v := range d.fw.offer {
		if d.updates[i] == nil {
			d.updates[i] = v // Options win over what was stored
		}
	}
	return nil
}

func (firmwareService) saveLocked(d *Device) (json.RawMessage, error) {
	if d.fw == nil {
		return nil, nil
	}
	return d.fw.section(d.fw.next)
}

// section is the stored section with installed as the installed version
// (nil: the running one).
func (f *firmwareState) section(installed *fwVersion) (json.RawMessage, error) {
	s := firmwareSection{Ver: f.ver, FwID: f.fwID, Stable: f.offer[0], Beta: f.offer[1]}
	if installed != nil {
		s.Ver, s.FwID = installed.Ver, installed.FwID
	}
	if s == (firmwareSection{}) {
		return nil, nil
	}
	return json.Marshal(s)
}

func (firmwareService) sysLocked(d *Device, set func(string, any)) {
	if offer, changed := d.offerLocked(); changed {
		set("available_updates", d.renderOffer(offer))
	}
	if d.fw != nil && d.fw.ver != "" {
		set("ver", d.fw.ver) // Shelly.GetDeviceInfo (and the Wall Display's)
		set("fw_id", d.fw.fwID)
	}
}

// bootLocked: an update under way is lost; one installed runs now.
func (firmwareService) bootLocked(d *Device, _ time.Time) {
	if d.fw == nil {
		return
	}
	d.stopOTALocked()
	if n := d.fw.next; n != nil {
		d.fw.ver, d.fw.fwID, d.fw.next = n.Ver, n.FwID, nil
	}
}

func (firmwareService) stopLocked(d *Device) {
	if d.fw != nil {
		d.stopOTALocked()
	}
}

// stopOTALocked ends the update under way, if any, without a word.
func (d *Device) stopOTALocked() {
	r := d.fw.run
	if r == nil {
		return
	}
	d.fw.run = nil
	d.stopTimerLocked(r.timer)
	r.cancel()
	r.releaseHold()
}

func (r *otaRun) releaseHold() {
	if r.release != nil {
		r.release() // a second call does nothing
	}
}

// CheckVersion reports whether v can be offered as a firmware update
// (Options.UpdateStable, OfferUpdates): what firmware versions are made of
// ("1.2.0-beta1", "1.5.99-dev114743"), at most 64 characters; "" (none
// offered) is fine. A fw_id is built from it, so nothing else may be in it.
func CheckVersion(v string) error {
	if len(v) > maxVersion {
		return fmt.Errorf("at most %d characters", maxVersion)
	}
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '_' || c == '+') {
			return errors.New("want a version such as 1.2.0 or 1.3.0-beta1 (letters, digits, '.', '-', '_', '+')")
		}
	}
	return nil
}

// checkVersion is CheckVersion naming the stage.
func checkVersion(stage, v string) error {
	if err := CheckVersion(v); err != nil {
		return fmt.Errorf("device: %s version %q: %w", stage, v, err)
	}
	return nil
}

// checkUpdates checks Options.UpdateStable and UpdateBeta.
func checkUpdates(o *Options) error {
	for i, v := range [2]*string{o.UpdateStable, o.UpdateBeta} {
		if v != nil {
			if err := checkVersion(stages[i], *v); err != nil {
				return err
			}
		}
	}
	return nil
}

// runningLocked returns the running firmware's version and fw_id.
func (d *Device) runningLocked() (ver, fwID string) {
	if d.fw != nil && d.fw.ver != "" {
		return d.fw.ver, d.fw.fwID
	}
	ver, _ = d.p.Info.String("ver")
	fwID, _ = d.p.Info.String("fw_id")
	return ver, fwID
}

// sysFwIDLocked is sys.device.fw_id of Sys.GetConfig: the installed
// firmware's, "" while the model's is running.
func (d *Device) sysFwIDLocked() string {
	if d.fw == nil {
		return ""
	}
	return d.fw.fwID
}

// offerLocked returns the updates on offer (sys.available_updates) and
// whether they differ from the dump's: the dump's, each stage replaced
// where Options or OfferUpdates set it, and without a stage that offers
// the version an update installed.
func (d *Device) offerLocked() (*jsonv.Object, bool) {
	base := d.p.Status.Object("sys").Object("available_updates")
	if base == nil {
		base = &jsonv.Object{}
	}
	installed := ""
	if d.fw != nil {
		installed = d.fw.ver
	}
	if d.updates == [2]*string{} && installed == "" {
		return base, false
	}
	out := &jsonv.Object{}
	add := func(stage string, v jsonv.Value) {
		if installed != "" && versionOf(v) == installed {
			return // installed: no longer an update
		}
		out.Keys, out.Vals = append(out.Keys, stage), append(out.Vals, v)
	}
	for i, stage := range stages {
		cur, had := base.Get(stage)
		switch set := d.updates[i]; {
		case set == nil:
			if had {
				add(stage, cur)
			}
		case *set == "":
		case had && versionOf(cur) == *set:
			add(stage, cur)
		default:
			add(stage, &jsonv.Object{Keys: []string{"version"}, Vals: []jsonv.Value{*set}})
		}
	}
	for i, k := range base.Keys {
		if k != stages[0] && k != stages[1] {
			add(k, base.Vals[i])
		}
	}
	return out, true
}

// versionOf is the version of an offered stage, "" when it has none.
func versionOf(stage jsonv.Value) string {
	o, _ := stage.(*jsonv.Object)
	v, _ := o.String("version")
	return v
}

func (d *Device) renderOffer(offer *jsonv.Object) json.RawMessage {
	b, err := d.render(offer, nil)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}

// OfferUpdates changes the firmware versions offered as updates
// (sys.available_updates, Shelly.CheckForUpdate), as the vendor's update
// server does when it releases one: nil keeps a stage as it is, "" offers
// none. The offer is stored, wins over Options.UpdateStable and UpdateBeta
// until the next New that sets them, and a change is pushed as a
// NotifyStatus of sys.
func (d *Device) OfferUpdates(stable, beta *string) error {
	set := [2]*string{stable, beta}
	for i, v := range set {
		if v != nil {
			if err := checkVersion(stages[i], *v); err != nil {
				return shellyws.Errorf(shellyws.CodeInvalidArgument, "%v", err)
			}
		}
	}
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	before, _ := d.offerLocked()
	old := d.renderOffer(before)
	f := d.fw
	if f == nil {
		f = &firmwareState{}
	}
	offer := f.offer
	for i, v := range set {
		if v != nil {
			s := *v
			offer[i] = &s
		}
	}
	tmp := firmwareState{ver: f.ver, fwID: f.fwID, offer: offer}
	raw, err := tmp.section(f.next)
	if err == nil {
		err = d.saveSectionLocked("firmware", raw)
	}
	if err != nil {
		d.mu.Unlock()
		return err
	}
	d.fw, f.offer = f, offer
	for i, v := range offer {
		if set[i] != nil {
			d.updates[i] = v
		}
	}
	after, _ := d.offerLocked()
	now := d.renderOffer(after)
	d.mu.Unlock()
	if string(now) != string(old) && d.p.Status.Object("sys").Has("available_updates") {
		d.notify(map[string]any{"sys": map[string]any{"available_updates": now}})
	}
	return nil
}

// checkForUpdateRPC serves Shelly.CheckForUpdate: the stages on offer,
// each with its version and build_id; {} when nothing is.
func checkForUpdateRPC(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
	d.mu.Lock()
	offer, _ := d.offerLocked()
	d.mu.Unlock()
	var res jsonv.Patch
	for i, stage := range offer.Keys {
		v := versionOf(offer.Vals[i])
		if v == "" {
			continue
		}
		build, _ := offer.Vals[i].(*jsonv.Object).String("build_id")
		if build == "" {
			build = offerBuildDate + "/" + v + "-" + simBuild
		}
		res = append(res, jsonv.Field{Key: stage, Val: jsonv.Patch{{Key: "version", Val: v}, {Key: "build_id", Val: build}}})
	}
	b, err := jsonv.AppendJSON(nil, &jsonv.Object{}, "", "", res)
	return json.RawMessage(b), err
}

// updateParams are Shelly.Update's params.
type updateParams struct {
	Stage *string `json:"stage"`
	URL   *string `json:"url"`
}

// updateRPC serves Shelly.Update: null at once, then the update runs in
// the background (ota_begin, ota_progress, ota_success or ota_error) and
// ends in a reboot into the new firmware.
func updateRPC(d *Device, ctx context.Context, req *shellyws.Request) (any, error) {
	var p updateParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.Stage != nil && p.URL != nil {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Give either 'stage' or 'url', not both")
	}
	if p.URL != nil {
		if err := checkUpdateURL(*p.URL); err != nil {
			return nil, err
		}
	}
	stage := stages[0]
	if p.Stage != nil {
		stage = *p.Stage
	}
	r, err := d.startOTA(stage, p.URL)
	if err != nil {
		return nil, err
	}
	begin := func() { d.beginOTA(r) }
	if !shellyws.AfterReply(ctx, begin) {
		begin() // not served by a channel: nothing to wait for
	}
	return nil, nil
}

// startOTA claims the device for an update of stage, or of rawURL when it
// is set: one at a time, never while a reboot is pending.
func (d *Device) startOTA(stage string, rawURL *string) (*otaRun, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.running {
		return nil, errNotRunning
	}
	if d.fw != nil && d.fw.run != nil {
		return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "Update already in progress")
	}
	if d.rebootPending {
		return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "Device is about to reboot")
	}
	r := &otaRun{}
	if rawURL != nil {
		r.url = *rawURL
		r.target, _ = d.runningLocked()
	} else {
		offer, _ := d.offerLocked()
		v, ok := offer.Get(stage)
		if r.target = versionOf(v); !ok || r.target == "" {
			return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "No %s update available", stage)
		}
	}
	if d.fw == nil {
		d.fw = &firmwareState{}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if d.sleeping() {
		r.release = d.comp.HoldAwake() // awake until the reboot
	}
	d.fw.run = r
	return r, nil
}

// checkUpdateURL checks Shelly.Update's url; the message never repeats it
// (it may hold credentials).
func checkUpdateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > maxUpdateURL || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'url': want an http:// or https:// URL of at most %d characters", maxUpdateURL)
	}
	return nil
}

// beginOTA starts r once its answer is on the wire: ota_begin, the
// progress timer and, for a url, the fetch.
func (d *Device) beginOTA(r *otaRun) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if d.fw == nil || d.fw.run != r || !d.running {
		d.mu.Unlock()
		return
	}
	r.start = time.Now()
	r.timer = d.startTimerLocked(d.otaDue(r, 1), d.otaStep)
	if r.url != "" {
		d.startTimerLocked(0, func(*time.Timer) { d.fetchImage(r) })
	}
	d.mu.Unlock()
	d.otaEvent("ota_begin", map[string]any{"msg": "Waiting for data"})
}

// otaDue is how long from now step is due: ota_progress k at k tenths of
// the update's time, the last (100 %, ota_success) half a tenth before its
// end, which leaves that half for scheduled_restart.
func (d *Device) otaDue(r *otaRun, step int) time.Duration {
	tenth := d.otaTime / otaSteps
	at := time.Duration(step) * tenth
	if step == otaSteps {
		at -= tenth / 2
	}
	return max(time.Until(r.start.Add(at)), 0)
}

// otaStep is the progress timer firing.
func (d *Device) otaStep(self *time.Timer) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	r := d.runLocked()
	if r == nil || r.timer != self || !d.running {
		d.mu.Unlock()
		return
	}
	r.timer = nil
	r.step++
	if r.step >= otaSteps {
		if r.url != "" && !r.fetched {
			r.waiting = true // the fetch finishes the update
			d.mu.Unlock()
			return
		}
		d.finishOTALocked(r) // unlocks d.mu
		return
	}
	r.timer = d.startTimerLocked(d.otaDue(r, r.step+1), d.otaStep)
	pct := r.step * 100 / otaSteps
	d.mu.Unlock()
	d.otaEvent("ota_progress", map[string]any{"msg": "Waiting for data", "progress_percent": pct})
}

func (d *Device) runLocked() *otaRun {
	if d.fw == nil {
		return nil
	}
	return d.fw.run
}

// fetchImage GETs the url of r, reading and discarding at most maxImage
// bytes; a failure ends the update with ota_error.
func (d *Device) fetchImage(r *otaRun) {
	err := d.get(r.ctx, r.url)
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	if d.runLocked() != r || !d.running {
		d.mu.Unlock()
		return
	}
	if err != nil {
		msg := scrubURL(err.Error(), r.url)
		d.log.Warn("device: firmware update failed", "url", redactURL(r.url), "err", msg)
		d.failOTALocked(msg) // unlocks d.mu
		return
	}
	r.fetched = true
	if r.waiting {
		d.finishOTALocked(r) // unlocks d.mu
		return
	}
	d.mu.Unlock()
}

// get fetches rawURL as a device's firmware download does; its error
// never holds the URL.
func (d *Device) get(ctx context.Context, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, otaFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return errors.New("invalid URL")
	}
	req.Close = true // a one-off download: no idle connection left behind
	resp, err := d.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxImage+1))
	if err != nil {
		return err
	}
	if n > maxImage {
		return errors.New("firmware image too large")
	}
	return nil
}

// failOTALocked ends r with ota_error and no reboot; the caller holds
// d.notifyMu and d.mu, which it releases.
func (d *Device) failOTALocked(msg string) {
	d.stopOTALocked()
	d.mu.Unlock()
	d.otaEvent("ota_error", map[string]any{"msg": msg})
}

// finishOTALocked installs r's version, stored before anything else, and
// reboots into it: ota_progress 100, ota_success, scheduled_restart, then
// the reboot of section 11 half a tenth of the update's time later. The
// caller holds d.notifyMu and d.mu, which it releases.
func (d *Device) finishOTALocked(r *otaRun) {
	installed := &fwVersion{Ver: r.target, FwID: d.now().UTC().Format(fwIDTime) + "/" + r.target + "-" + simBuild}
	raw, err := d.fw.section(installed)
	if err == nil {
		err = d.saveSectionLocked("firmware", raw)
	}
	if err != nil {
		d.failOTALocked("Failed to store the update")
		return
	}
	d.fw.next = installed
	if !d.rebootPending {
		d.rebootPending = true
		d.rebootAt = time.Now().Add(max(d.otaTime/otaSteps/2, min(d.rebootDelay, maxMinRebootDelay)))
		if d.sleeping() {
			d.rebootRelease = d.comp.HoldAwake()
		}
	}
	left := max(time.Until(d.rebootAt), 0)
	d.stopOTALocked()
	d.mu.Unlock()
	d.otaEvent("ota_progress", map[string]any{"msg": "Waiting for data", "progress_percent": 100})
	d.otaEvent("ota_success", map[string]any{"msg": "Update applied, rebooting"})
	d.otaEvent("scheduled_restart", map[string]any{"time_ms": left.Milliseconds()})
	// The timer is armed once the events are queued: a reboot empties the
	// queue.
	d.mu.Lock()
	if d.running && d.rebootPending && d.rebootTimer == nil {
		d.rebootTimer = d.startTimerLocked(max(time.Until(d.rebootAt), 0), d.reboot)
	}
	d.mu.Unlock()
}

// otaEvent sends an event of sys; the caller holds d.notifyMu, not d.mu.
func (d *Device) otaEvent(name string, fields map[string]any) {
	if err := d.comp.NotifyEvent(shellyws.Event{Component: "sys", Event: name, Fields: fields}); err != nil {
		d.log.Error("device: NotifyEvent failed", "err", err)
	}
}

// redactURL is rawURL for a log: no user info, every query value hidden.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<invalid URL>"
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// scrubURL removes from msg what of rawURL is secret: its user info and
// query values, raw and decoded.
func scrubURL(msg, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return msg
	}
	var secrets []string
	if u.User != nil {
		secrets = append(secrets, u.User.String(), u.User.Username())
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
	}
	if u.RawQuery != "" {
		secrets = append(secrets, u.RawQuery)
		for _, vals := range u.Query() {
			secrets = append(secrets, vals...)
		}
	}
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return msg
}
