package device

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// Script limits (protocol section 15.4; docs/protocol-decisions.md).
const (
	// maxScripts is how many scripts a device holds, as the firmware.
	maxScripts = 10
	// maxScriptCode is the most code one script holds, in bytes: the
	// largest bound reported from real devices, so any script a real
	// device takes fits.
	maxScriptCode = 65535
	// maxScriptName bounds a script's name, in bytes.
	maxScriptName = 255
	// scriptMemTotal is a script's memory budget, mem_free of a stopped
	// script in every dump.
	scriptMemTotal = 25200
)

// scriptService is Script.* (protocol section 15.4): scripts stored
// byte-exact, start and stop as state only (no JavaScript engine), and
// script:<id> as a component of the device.
type scriptService struct{}

func (scriptService) name() string { return "scripts" }

// scriptMethods are the service's methods.
var scriptMethods = []serviceMethod{
	{"Script.Create", scriptCreate},
	{"Script.Delete", scriptDelete},
	{"Script.Eval", scriptEval},
	{"Script.GetCode", scriptGetCode},
	{"Script.GetConfig", scriptGetConfig},
	{"Script.GetStatus", scriptGetStatus},
	{"Script.List", scriptList},
	{"Script.PutCode", scriptPutCode},
	{"Script.SetConfig", scriptSetConfig},
	{"Script.Start", scriptStart},
	{"Script.Stop", scriptStop},
}

func (scriptService) register(p *Model, handle func(string, handler)) {
	if !hasScripts(p) {
		return
	}
	registerMethods(p, handle, scriptMethods)
}

// hasScripts reports whether devices of p have the Script service: where
// the dump has a captured Shelly.ListMethods, when it lists Script.List;
// otherwise on models that are always on and run the firmware with KVS
// (sys status has kvs_rev): battery models and the Wall Display have no
// scripts.
func hasScripts(p *Model) bool {
	if p.Methods != nil {
		return listed(p.Methods, "Script.List")
	}
	return p.Status.Object("sys").Has("kvs_rev") && p.WakeupPeriod() == 0
}

func (scriptService) load(d *Device, raw json.RawMessage) error {
	if raw == nil || d.m.scripts == nil {
		return nil
	}
	var sec struct {
		Scripts []*script `json:"scripts"`
	}
	if err := json.Unmarshal(raw, &sec); err != nil {
		return err
	}
	seen := map[int]bool{}
	for _, s := range sec.Scripts {
		if s == nil || s.ID < 1 || seen[s.ID] || len(s.Code) > maxScriptCode {
			return fmt.Errorf("a stored script is unusable")
		}
		seen[s.ID] = true
	}
	slices.SortFunc(sec.Scripts, func(a, b *script) int { return a.ID - b.ID })
	d.scripts = &scriptState{list: sec.Scripts}
	return nil
}

func (scriptService) saveLocked(d *Device) (json.RawMessage, error) {
	if d.scripts == nil {
		return nil, nil // the model's scripts, as the dump has them
	}
	return encodeScripts(d.scripts.list)
}

func encodeScripts(list []*script) (json.RawMessage, error) {
	return json.Marshal(struct {
		Scripts []*script `json:"scripts"`
	}{list})
}

func (scriptService) sysLocked(*Device, func(string, any)) {}

// bootLocked starts the scripts whose enable is set, as the firmware does
// at every boot. The first boot of a device with nothing stored is the
// captured device as captured: its scripts run as the dump shows.
func (scriptService) bootLocked(d *Device, _ time.Time) {
	m := d.m.scripts
	if m == nil {
		return
	}
	if d.scripts == nil {
		if d.resetReason == resetPowerOn {
			return
		}
		same := true
		for _, s := range m.initial {
			same = same && s.running == s.Enable
		}
		if same {
			return // nothing to change: stay on the shared list
		}
		d.scripts = &scriptState{list: cloneScripts(m.initial)}
	}
	for _, s := range d.scripts.list {
		s.running = s.Enable
	}
}

func (scriptService) stopLocked(*Device) {}

// scriptState is a device's scripts, by id; nil while they are the
// model's (scriptModel.initial).
type scriptState struct {
	list []*script
}

// script is one script: what is stored, and whether it runs (RAM only).
type script struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Enable bool   `json:"enable"`
	Code   string `json:"code"`
	// Dump is set for a script the model's dump has: it is rendered in
	// the dump's shape.
	Dump    bool `json:"dump,omitempty"`
	running bool
}

// scriptModel is what every device of a model with the Script service
// shares: the dump's scripts (script:N keys), code empty.
type scriptModel struct {
	initial        []*script // read-only; running as the dump shows
	status, config map[int]*jsonv.Object
}

// newScriptModel returns the Script service's data of p, nil where p has
// no Script service.
func newScriptModel(p *Model) *scriptModel {
	if !hasScripts(p) {
		return nil
	}
	m := &scriptModel{status: map[int]*jsonv.Object{}, config: map[int]*jsonv.Object{}}
	for _, key := range p.Keys {
		id, ok := keyInstance(key)
		if keyType(key) != "script" || !ok || id < 1 {
			continue
		}
		cfg, st := p.Config.Object(key), p.Status.Object(key)
		s := &script{ID: id, Name: defaultScriptName(id), Dump: true}
		if name, ok := cfg.String("name"); ok {
			s.Name = name
		}
		if v, _ := cfg.Get("enable"); v == true {
			s.Enable = true
		}
		if v, _ := st.Get("running"); v == true {
			s.running = true
		}
		m.initial = append(m.initial, s)
		m.status[id], m.config[id] = st, cfg
	}
	slices.SortFunc(m.initial, func(a, b *script) int { return a.ID - b.ID })
	return m
}

// defaultScriptName is the name of a script created without one, as the
// dumps show ("script 1").
func defaultScriptName(id int) string { return "script " + strconv.Itoa(id) }

func cloneScripts(list []*script) []*script {
	out := make([]*script, len(list))
	for i, s := range list {
		c := *s
		out[i] = &c
	}
	return out
}

// scriptsLocked returns the device's scripts by id; the caller must not
// change them (see ownScriptsLocked).
func (d *Device) scriptsLocked() []*script {
	if d.scripts != nil {
		return d.scripts.list
	}
	return d.m.scripts.initial
}

// ownScriptsLocked returns the device's own scripts, copied from the
// model's on first use, for a change that is not stored (running).
func (d *Device) ownScriptsLocked() []*script {
	if d.scripts == nil {
		d.scripts = &scriptState{list: cloneScripts(d.m.scripts.initial)}
	}
	return d.scripts.list
}

func (d *Device) scriptLocked(id int) *script {
	for _, s := range d.scriptsLocked() {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// storeScriptsLocked stores list as the device's scripts, then makes it
// theirs: a refused save changes nothing.
func (d *Device) storeScriptsLocked(list []*script) error {
	raw, err := encodeScripts(list)
	if err != nil {
		return err
	}
	if err := d.saveSectionLocked(scriptService{}.name(), raw); err != nil {
		return err
	}
	d.scripts = &scriptState{list: list}
	return nil
}

// changeScripts is the stored Script.* writes: under d.mu, edit makes the
// new scripts from a copy of the current ones; they are stored.
func (d *Device) changeScripts(edit func(list []*script) ([]*script, error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	list, err := edit(cloneScripts(d.scriptsLocked()))
	if err != nil {
		return err
	}
	return d.storeScriptsLocked(list)
}

// scriptIndex is where the script with id is in list, or the firmware's
// error.
func scriptIndex(list []*script, id int) (int, error) {
	i := slices.IndexFunc(list, func(s *script) bool { return s.ID == id })
	if i < 0 {
		return -1, errNoID(id)
	}
	return i, nil
}

// componentKeys returns keys (a model's component keys, in order) with the
// model's script:N keys replaced by the device's scripts, where the model
// has the Script service: scripts are components a device creates and
// deletes. They go where the dump had them, else in alphabetical place.
func (d *Device) componentKeys(keys []string) []string {
	m := d.m.scripts
	if m == nil {
		return keys
	}
	d.mu.Lock()
	list := d.scriptsLocked()
	same := len(list) == len(m.initial)
	for i := 0; same && i < len(list); i++ {
		same = list[i].ID == m.initial[i].ID
	}
	if same {
		d.mu.Unlock()
		return keys // the dump's script keys
	}
	ids := make([]int, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	d.mu.Unlock()
	out := make([]string, 0, len(keys)+len(ids))
	done := false
	insert := func() {
		for _, id := range ids {
			out = append(out, scriptKey(id))
		}
		done = true
	}
	for _, k := range keys {
		if keyType(k) == "script" {
			if !done {
				insert()
			}
			continue
		}
		if !done && k > "script:" {
			insert()
		}
		out = append(out, k)
	}
	if !done {
		insert()
	}
	return out
}

func scriptKey(id int) string { return "script:" + strconv.Itoa(id) }

// scriptComponent reports whether key is a script the device manages.
func (d *Device) scriptComponent(key string) bool {
	return d.m.scripts != nil && keyType(key) == "script"
}

// scriptStatusOf is a script's status: its memory figures are in the
// dumps' range, derived from the code size.
type scriptStatusOf struct {
	ID      int  `json:"id"`
	Running bool `json:"running"`
	MemUsed *int `json:"mem_used,omitempty"`
	MemPeak *int `json:"mem_peak,omitempty"`
	MemFree int  `json:"mem_free"`
}

func newScriptStatus(s *script) scriptStatusOf {
	st := scriptStatusOf{ID: s.ID, Running: s.running, MemFree: scriptMemTotal}
	if s.running {
		used := min(700+len(s.Code)/4, scriptMemTotal)
		peak := min(4*used, scriptMemTotal)
		st.MemUsed, st.MemPeak, st.MemFree = &used, &peak, scriptMemTotal-used
	}
	return st
}

// scriptStatus renders the status of script key: the dump's while a
// script of the dump runs as captured.
func (d *Device) scriptStatus(key string) (json.RawMessage, error) {
	id, _ := keyInstance(key)
	d.mu.Lock()
	s := d.scriptLocked(id)
	if s == nil {
		d.mu.Unlock()
		return nil, shellyws.Errorf(shellyws.CodeNotFound, "No status for %s", key)
	}
	st := newScriptStatus(s)
	var dump *jsonv.Object
	if s.Dump {
		dump = d.m.scripts.status[id]
		if v, _ := dump.Get("running"); dump != nil && v != s.running {
			dump = nil
		}
	}
	d.mu.Unlock()
	if dump != nil {
		return d.render(dump, nil)
	}
	return json.Marshal(st)
}

// scriptConfigOf is a script's config.
type scriptConfigOf struct {
	ID     int    `json:"id"`
	Name   string `json:"name"`
	Enable bool   `json:"enable"`
}

// scriptConfig renders the config of script key, in the dump's shape for
// a script of the dump.
func (d *Device) scriptConfig(key string) (json.RawMessage, error) {
	id, _ := keyInstance(key)
	d.mu.Lock()
	s := d.scriptLocked(id)
	if s == nil {
		d.mu.Unlock()
		return nil, shellyws.Errorf(shellyws.CodeNotFound, "No config for %s", key)
	}
	cfg := scriptConfigOf{s.ID, s.Name, s.Enable}
	var dump *jsonv.Object
	if s.Dump {
		dump = d.m.scripts.config[id]
	}
	d.mu.Unlock()
	if dump != nil && dump.Has("name") && dump.Has("enable") {
		return d.render(dump, jsonv.Patch{{Key: "name", Val: cfg.Name}, {Key: "enable", Val: cfg.Enable}})
	}
	return json.Marshal(cfg)
}

// requiredID reads the "id" req must have.
func requiredID(req *shellyws.Request) (int, error) {
	var p struct {
		ID *int `json:"id"`
	}
	if err := req.Decode(&p); err != nil {
		return 0, err
	}
	if p.ID == nil {
		return 0, missingArg("id")
	}
	return *p.ID, nil
}

func checkScriptName(name string) error {
	if len(name) > maxScriptName {
		return shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'name': at most %d bytes", maxScriptName)
	}
	return nil
}

// idResult is what Script.Create answers.
type idResult struct {
	ID int `json:"id"`
}

func scriptCreate(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		Name *string `json:"name"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.Name != nil {
		if err := checkScriptName(*p.Name); err != nil {
			return nil, err
		}
	}
	var id int
	err := d.changeScripts(func(list []*script) ([]*script, error) {
		if len(list) >= maxScripts {
			return nil, shellyws.Errorf(shellyws.CodeResourceExhausted, "Too many scripts: at most %d", maxScripts)
		}
		id = 1
		if len(list) > 0 {
			id = list[len(list)-1].ID + 1
		}
		s := &script{ID: id, Name: defaultScriptName(id)}
		if p.Name != nil {
			s.Name = *p.Name
		}
		return append(list, s), nil
	})
	if err != nil {
		return nil, err
	}
	return idResult{id}, nil
}

func scriptDelete(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	id, err := requiredID(req)
	if err != nil {
		return nil, err
	}
	return nil, d.changeScripts(func(list []*script) ([]*script, error) {
		i, err := scriptIndex(list, id)
		if err != nil {
			return nil, err
		}
		// A running script is stopped with it; its key simply goes.
		return slices.Delete(list, i, i+1), nil
	})
}

// lenResult is what Script.PutCode answers: the bytes stored.
type lenResult struct {
	Len int `json:"len"`
}

func scriptPutCode(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		ID     *int    `json:"id"`
		Code   *string `json:"code"`
		Append bool    `json:"append"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	if p.Code == nil {
		return nil, missingArg("code")
	}
	code := *p.Code
	err := d.changeScripts(func(list []*script) ([]*script, error) {
		i, err := scriptIndex(list, *p.ID)
		if err != nil {
			return nil, err
		}
		s := list[i]
		if s.running {
			return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "Script is running: stop it first")
		}
		if p.Append {
			if len(s.Code)+len(code) > maxScriptCode {
				return nil, errCodeSize()
			}
			code = s.Code + code
		}
		if len(code) > maxScriptCode {
			return nil, errCodeSize()
		}
		s.Code = code
		return list, nil
	})
	if err != nil {
		return nil, err
	}
	return lenResult{len(code)}, nil
}

func errCodeSize() error {
	return shellyws.Errorf(shellyws.CodeResourceExhausted, "Script code too large: at most %d bytes", maxScriptCode)
}

// codeResult is what Script.GetCode answers.
type codeResult struct {
	Data string `json:"data"`
	Left int    `json:"left"`
}

// scriptGetCode answers len bytes of code from offset (to the end without
// len). A chunk never splits a UTF-8 sequence: it ends before a sequence
// len would cut (left counts it), or holds the one whole character that
// starts at offset when len is shorter than it; an offset inside a
// sequence is -103. So a client that adds len(data) in bytes to offset
// reads the code back byte-exact.
func scriptGetCode(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		ID     *int `json:"id"`
		Offset *int `json:"offset"`
		Len    *int `json:"len"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	d.mu.Lock()
	s := d.scriptLocked(*p.ID)
	var code string
	if s != nil {
		code = s.Code
	}
	d.mu.Unlock()
	if s == nil {
		return nil, errNoID(*p.ID)
	}
	off := 0
	if p.Offset != nil {
		off = *p.Offset
	}
	if off < 0 || off > len(code) {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'offset': must be in [0, %d]", len(code))
	}
	if off < len(code) && !utf8.RuneStart(code[off]) {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'offset': %d is inside a UTF-8 sequence", off)
	}
	end := len(code)
	if p.Len != nil {
		if *p.Len < 1 {
			return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'len': must be at least 1")
		}
		end = off + min(*p.Len, len(code)-off)
		for end < len(code) && end > off && !utf8.RuneStart(code[end]) {
			end--
		}
		if end == off && off < len(code) {
			_, n := utf8.DecodeRuneInString(code[off:])
			end = off + n
		}
	}
	return codeResult{Data: code[off:end], Left: len(code) - end}, nil
}

// scriptListEntry is one entry of Script.List.
type scriptListEntry struct {
	ID      int    `json:"id"`
	Name    string `json:"name"`
	Enable  bool   `json:"enable"`
	Running bool   `json:"running"`
}

func scriptList(d *Device, _ context.Context, _ *shellyws.Request) (any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.scriptsLocked()
	res := struct {
		Scripts []scriptListEntry `json:"scripts"`
	}{make([]scriptListEntry, 0, len(list))}
	for _, s := range list {
		res.Scripts = append(res.Scripts, scriptListEntry{s.ID, s.Name, s.Enable, s.running})
	}
	return res, nil
}

// wasRunningResult is what Script.Start and Script.Stop answer.
type wasRunningResult struct {
	WasRunning bool `json:"was_running"`
}

func scriptStart(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	return d.runScript(req, true)
}

func scriptStop(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	return d.runScript(req, false)
}

// runScript marks a script running or stopped (there is no engine) and
// sends its status delta when that changed.
func (d *Device) runScript(req *shellyws.Request, run bool) (any, error) {
	id, err := requiredID(req)
	if err != nil {
		return nil, err
	}
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	i, err := scriptIndex(d.scriptsLocked(), id)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	s := d.ownScriptsLocked()[i] // the same list, copied on first use
	was := s.running
	s.running = run
	st := newScriptStatus(s)
	d.mu.Unlock()
	if was != run {
		d.notify(map[string]any{scriptKey(id): st})
	}
	return wasRunningResult{was}, nil
}

func scriptEval(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p struct {
		ID   *int    `json:"id"`
		Code *string `json:"code"`
	}
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	if p.Code == nil {
		return nil, missingArg("code")
	}
	d.mu.Lock()
	s := d.scriptLocked(*p.ID)
	running := s != nil && s.running
	d.mu.Unlock()
	switch {
	case s == nil:
		return nil, errNoID(*p.ID)
	case !running:
		return nil, shellyws.Errorf(shellyws.CodeFailedPrecondition, "Script is not running")
	}
	return nil, shellyws.Errorf(shellyws.CodeUnavailable, "no script engine")
}

func scriptGetStatus(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	return readScript(d, req, d.scriptStatus)
}

func scriptGetConfig(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	return readScript(d, req, d.scriptConfig)
}

// readScript answers read with the key of the script req's id names, or
// the firmware's error for an id that has no script.
func readScript(d *Device, req *shellyws.Request, read func(key string) (json.RawMessage, error)) (any, error) {
	id, err := requiredID(req)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	ok := d.scriptLocked(id) != nil
	d.mu.Unlock()
	if !ok {
		return nil, errNoID(id)
	}
	return read(scriptKey(id))
}

// scriptSetConfig serves Script.SetConfig as every SetConfig (protocol
// section 15.1): name and enable merged and checked, stored with
// sys.cfg_rev up by one before the answer, then the sys delta and the
// config_changed event of script:<id>. enable takes effect at the next
// boot; a running script keeps running.
func scriptSetConfig(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p setConfigParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	if p.ID == nil {
		return nil, missingArg("id")
	}
	id := *p.ID
	if len(p.Config) == 0 || string(p.Config) == "null" {
		return nil, missingArg("config")
	}
	v, err := jsonv.Parse(p.Config)
	in, ok := v.(*jsonv.Object)
	if err != nil || !ok {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'config': must be an object")
	}
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	list := cloneScripts(d.scriptsLocked())
	i, err := scriptIndex(list, id)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	s := list[i]
	cur := &jsonv.Object{Keys: []string{"id", "name", "enable"}, Vals: []jsonv.Value{json.Number(strconv.Itoa(id)), s.Name, s.Enable}}
	merged, err := mergeConfig(cur, in, "script", "")
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	name, isStr := merged.Vals[1].(string)
	if !isStr {
		d.mu.Unlock()
		return nil, badType("name", "a string")
	}
	if err := checkScriptName(name); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	s.Name, s.Enable = name, merged.Vals[2].(bool)
	raw, err := encodeScripts(list)
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	rev, err := d.storeConfigLocked(func(doc *stateDoc) {
		if doc.Services == nil {
			doc.Services = map[string]json.RawMessage{}
		}
		doc.Services[scriptService{}.name()] = raw
	})
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	d.scripts = &scriptState{list: list}
	d.mu.Unlock()
	d.notify(map[string]any{"sys": map[string]any{"cfg_rev": rev}})
	d.configChanged(scriptKey(id), false, rev)
	return restartResult{false}, nil
}
