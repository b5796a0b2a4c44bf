package device

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/frame"
)

// KVSPageSize is how many items one KVS.GetMany page holds; a client reads
// further pages with "offset", as Fleet Manager pages Shelly.GetComponents.
// With values of at most 253 bytes a page stays under about 3 KiB.
const KVSPageSize = 10

// The KVS limits of the vendor's docs (protocol section 15.5).
const (
	maxKVSKeys     = 50
	maxKVSKeyLen   = 42  // characters
	maxKVSValueLen = 253 // bytes of the value's compact JSON
)

// kvsService is KVS.* (protocol section 15.5): a store of up to 50 JSON
// values by key, each with an etag, and kvs_rev in sys status.
type kvsService struct{}

func (kvsService) name() string { return "kvs" }

// kvsMethods are the service's methods, in the firmware's spelling.
var kvsMethods = []serviceMethod{
	{"KVS.Set", kvsSet},
	{"KVS.Get", kvsGet},
	{"KVS.GetMany", kvsGetMany},
	{"KVS.List", kvsList},
	{"KVS.Delete", kvsDelete},
}

func (kvsService) register(p *Model, handle func(string, handler)) {
	if !hasKVS(p) {
		return
	}
	registerMethods(p, handle, kvsMethods)
}

// hasKVS reports whether devices of p have KVS: where the dump has a
// captured Shelly.ListMethods, when it lists KVS.Get; otherwise where the
// dump's sys status reports kvs_rev (every dump but the Wall Display's,
// battery models included, and NewModel models).
func hasKVS(p *Model) bool {
	if p.Methods != nil {
		return listed(p.Methods, "KVS.Get")
	}
	return p.Status.Object("sys").Has("kvs_rev")
}

func (kvsService) load(d *Device, raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var st kvsState
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	for _, it := range st.Items {
		if !json.Valid([]byte(it.Value)) {
			return errKVSStored
		}
	}
	slices.SortFunc(st.Items, func(a, b kvsItem) int { return strings.Compare(a.Key, b.Key) })
	st.raw = raw
	d.kvs = &st
	return nil
}

var errKVSStored = errors.New("a stored value is not JSON")

func (kvsService) saveLocked(d *Device) (json.RawMessage, error) {
	if d.kvs == nil {
		return nil, nil
	}
	return d.kvs.raw, nil
}

func (kvsService) sysLocked(d *Device, set func(string, any)) {
	if d.kvs != nil {
		set("kvs_rev", d.kvs.Rev)
	}
}

func (kvsService) bootLocked(*Device, time.Time) {}
func (kvsService) stopLocked(*Device)            {}

// kvsState is a device's KVS, nil until the first change: then the
// section "kvs" of its stored state. A change builds a new state, stores
// it, and only then replaces the old one.
type kvsState struct {
	// Rev is kvs_rev.
	Rev int `json:"rev"`
	// Items are the entries, by key.
	Items []kvsItem `json:"items"`

	raw json.RawMessage // Rev and Items as stored
}

// kvsItem is one entry.
type kvsItem struct {
	Key string `json:"key"`
	// Value is the value's JSON text, kept as a string so that it comes
	// back byte for byte (number literals, escapes) after a restart.
	Value string `json:"value"`
	Etag  string `json:"etag"`
}

// kvsRevLocked is kvs_rev now: the dump's until the first change.
func (d *Device) kvsRevLocked() int {
	if d.kvs != nil {
		return d.kvs.Rev
	}
	rev, _ := d.p.Status.Object("sys").Number("kvs_rev")
	return int(rev)
}

func (d *Device) kvsItemsLocked() []kvsItem {
	if d.kvs == nil {
		return nil
	}
	return d.kvs.Items
}

// kvsFind returns the index of key in items (sorted by key) and whether it
// is there.
func kvsFind(items []kvsItem, key string) (int, bool) {
	return slices.BinarySearchFunc(items, key, func(it kvsItem, k string) int { return strings.Compare(it.Key, k) })
}

// kvsEtag is the etag of a value: opaque, different for every write (it
// hashes the revision too).
func kvsEtag(key, value string, rev int) string {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(value))
	h.Write([]byte{0})
	h.Write(strconv.AppendInt(nil, int64(rev), 10))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)[:16])
}

// storeKVSLocked stores items as the new KVS with kvs_rev rev, then makes
// it the device's; a refused save changes nothing.
func (d *Device) storeKVSLocked(items []kvsItem, rev int) error {
	st := &kvsState{Rev: rev, Items: items}
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := d.saveSectionLocked(kvsService{}.name(), raw); err != nil {
		return err
	}
	st.raw = raw
	d.kvs = st
	return nil
}

// changeKVS is every KVS.* write: under the device's locks, edit makes
// the new items from the current ones (never changing those) for kvs_rev
// rev; they are stored with rev, which is reported and returned.
func (d *Device) changeKVS(edit func(items []kvsItem, rev int) ([]kvsItem, error)) (int, error) {
	d.notifyMu.Lock()
	defer d.notifyMu.Unlock()
	d.mu.Lock()
	rev := d.kvsRevLocked() + 1
	next, err := edit(d.kvsItemsLocked(), rev)
	if err == nil {
		err = d.storeKVSLocked(next, rev)
	}
	d.mu.Unlock()
	if err != nil {
		return 0, err
	}
	d.sysRevChanged("kvs_rev", rev)
	return rev, nil
}

// kvsParams are the params of every KVS method.
type kvsParams struct {
	Key    *string         `json:"key"`
	Value  json.RawMessage `json:"value"`
	Etag   *string         `json:"etag"`
	Match  *string         `json:"match"`
	Offset *int            `json:"offset"`
}

// decodeKVS decodes req's params and checks their key.
func decodeKVS(req *shellyws.Request) (kvsParams, string, error) {
	var p kvsParams
	if err := req.Decode(&p); err != nil {
		return p, "", err
	}
	key, err := p.key()
	return p, key, err
}

// key checks the params' key.
func (p *kvsParams) key() (string, error) {
	if p.Key == nil {
		return "", missingArg("key")
	}
	k := *p.Key
	if k == "" || utf8.RuneCountInString(k) > maxKVSKeyLen {
		return "", shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'key': must be 1 to %d characters long", maxKVSKeyLen)
	}
	return k, nil
}

// match returns the params' glob, "*" when none.
func (p *kvsParams) match() string {
	if p.Match == nil {
		return "*"
	}
	return *p.Match
}

func errKVSKey(key string) error {
	return shellyws.Errorf(shellyws.CodeNotFound, "Key %q not found", key)
}

var errKVSEtag = shellyws.Errorf(shellyws.CodeFailedPrecondition, "Etag mismatch")

// kvsSet serves KVS.Set {"key","value","etag"?} -> {"etag","rev"}. The
// value is stored as given, without insignificant white space.
func kvsSet(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	p, key, err := decodeKVS(req)
	if err != nil {
		return nil, err
	}
	if len(p.Value) == 0 {
		return nil, missingArg("value")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, p.Value); err != nil {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'value': not JSON")
	}
	if buf.Len() > maxKVSValueLen {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument,
			"Invalid argument 'value': %d bytes, at most %d", buf.Len(), maxKVSValueLen)
	}
	value := buf.String()

	var it kvsItem
	rev, err := d.changeKVS(func(items []kvsItem, rev int) ([]kvsItem, error) {
		i, found := kvsFind(items, key)
		switch {
		case p.Etag != nil && (!found || items[i].Etag != *p.Etag):
			return nil, errKVSEtag
		case !found && len(items) >= maxKVSKeys:
			return nil, shellyws.Errorf(shellyws.CodeResourceExhausted, "Too many keys: at most %d", maxKVSKeys)
		}
		it = kvsItem{Key: key, Value: value, Etag: kvsEtag(key, value, rev)}
		next := slices.Clone(items)
		if found {
			next[i] = it
		} else {
			next = slices.Insert(next, i, it)
		}
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	return struct {
		Etag string `json:"etag"`
		Rev  int    `json:"rev"`
	}{it.Etag, rev}, nil
}

// kvsGet serves KVS.Get {"key"} -> {"etag","value"}.
func kvsGet(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	_, key, err := decodeKVS(req)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	items := d.kvsItemsLocked()
	i, found := kvsFind(items, key)
	var it kvsItem
	if found {
		it = items[i]
	}
	d.mu.Unlock()
	if !found {
		return nil, errKVSKey(key)
	}
	buf := append([]byte(`{"etag":`), frame.AppendString(nil, it.Etag)...)
	buf = append(append(buf, `,"value":`...), it.Value...)
	return json.RawMessage(append(buf, '}')), nil
}

// kvsGetMany serves KVS.GetMany {"match","offset"} ->
// {"items":[{"key","etag","value"}],"offset","total"}, KVSPageSize items
// a page, keys in byte order.
func kvsGetMany(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p kvsParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	offset := 0
	if p.Offset != nil {
		offset = *p.Offset
	}
	if offset < 0 {
		return nil, shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument 'offset': must not be negative")
	}
	match := p.match()
	d.mu.Lock()
	var hits []kvsItem
	for _, it := range d.kvsItemsLocked() {
		if globMatch(match, it.Key) {
			hits = append(hits, it)
		}
	}
	d.mu.Unlock()
	buf := []byte(`{"items":[`)
	if offset < len(hits) {
		for i, it := range hits[offset:min(len(hits), offset+KVSPageSize)] {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = frame.AppendString(append(buf, `{"key":`...), it.Key)
			buf = frame.AppendString(append(buf, `,"etag":`...), it.Etag)
			buf = append(append(append(buf, `,"value":`...), it.Value...), '}')
		}
	}
	buf = strconv.AppendInt(append(buf, `],"offset":`...), int64(offset), 10)
	buf = strconv.AppendInt(append(buf, `,"total":`...), int64(len(hits)), 10)
	return json.RawMessage(append(buf, '}')), nil
}

// kvsList serves KVS.List {"match"} -> {"keys":{"k":{"etag"}},"rev"}.
func kvsList(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	var p kvsParams
	if err := req.Decode(&p); err != nil {
		return nil, err
	}
	match := p.match()
	d.mu.Lock()
	defer d.mu.Unlock()
	buf := []byte(`{"keys":{`)
	n := 0
	for _, it := range d.kvsItemsLocked() {
		if !globMatch(match, it.Key) {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = frame.AppendString(buf, it.Key)
		buf = append(frame.AppendString(append(buf, `:{"etag":`...), it.Etag), '}')
	}
	buf = strconv.AppendInt(append(buf, `},"rev":`...), int64(d.kvsRevLocked()), 10)
	return json.RawMessage(append(buf, '}')), nil
}

// kvsDelete serves KVS.Delete {"key","etag"?} -> {"rev"}.
func kvsDelete(d *Device, _ context.Context, req *shellyws.Request) (any, error) {
	p, key, err := decodeKVS(req)
	if err != nil {
		return nil, err
	}
	rev, err := d.changeKVS(func(items []kvsItem, _ int) ([]kvsItem, error) {
		i, found := kvsFind(items, key)
		switch {
		case !found:
			return nil, errKVSKey(key)
		case p.Etag != nil && items[i].Etag != *p.Etag:
			return nil, errKVSEtag
		}
		return slices.Delete(slices.Clone(items), i, i+1), nil
	})
	if err != nil {
		return nil, err
	}
	return revResult{rev}, nil
}

// globMatch reports whether s matches pattern, where '*' stands for any
// run of characters (none included) and every other character for
// itself.
func globMatch(pattern, s string) bool {
	star, back := -1, 0 // the last '*' seen, and where s resumes after it
	p, i := 0, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, back = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			back++
			p, i = star+1, back
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
