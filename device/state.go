package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/shellyws/shellyws/internal/atomicfile"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// A Store keeps what a device must not lose across a reboot or a restart
// of its process: the configs SetConfig changed, sys.cfg_rev and the rest
// of the device's stored state, as one JSON document. The Ws config and
// the password hash have stores of their own (shellyws.ConfigStore and
// shellyws.AuthStore).
type Store interface {
	// Load returns the stored document, or nil and no error when nothing
	// was stored yet.
	Load() ([]byte, error)
	// Save replaces the document; a crash at any instant leaves the old
	// or the new one.
	Save(doc []byte) error
}

// NewFileStore returns a Store that keeps the document in the file path,
// written atomically (write a temporary file, sync, rename), as the Ws
// config's file store does.
func NewFileStore(path string) Store { return &fileStore{path: path} }

type fileStore struct{ path string }

func (s *fileStore) Load() ([]byte, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func (s *fileStore) Save(doc []byte) error { return atomicfile.Write(s.path, doc, 0o600) }

// NewMemoryStore returns a Store held in memory, e.g. for tests: it keeps
// the document across a device's reboots, and across devices given the
// same store in turn.
func NewMemoryStore() Store { return &memoryStore{} }

type memoryStore struct {
	mu  sync.Mutex
	doc []byte
}

func (s *memoryStore) Load() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doc, nil
}

func (s *memoryStore) Save(doc []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc = append([]byte(nil), doc...)
	return nil
}

// stateDoc is the stored document.
type stateDoc struct {
	// CfgRev is sys.cfg_rev.
	CfgRev int `json:"cfg_rev"`
	// Config holds the whole config of each component SetConfig changed,
	// keys in the firmware's order.
	Config map[string]json.RawMessage `json:"config,omitempty"`
	// Services holds each service's section (kvs, webhooks, scripts,
	// schedules, firmware), by name.
	Services map[string]json.RawMessage `json:"services,omitempty"`
}

// loadState reads the device's stored state; the caller holds no lock
// (New, before the device is shared).
func (d *Device) loadState() error {
	var doc stateDoc
	if d.store != nil {
		raw, err := d.store.Load()
		if err != nil {
			return fmt.Errorf("device %s: stored state: %w", d.id, err)
		}
		if raw != nil {
			if err := json.Unmarshal(raw, &doc); err != nil {
				return fmt.Errorf("device %s: stored state is unusable: %w", d.id, err)
			}
		} else {
			doc.CfgRev = d.cfgRev
		}
	} else {
		doc.CfgRev = d.cfgRev
	}
	for _, s := range services {
		if err := s.load(d, doc.Services[s.name()]); err != nil {
			return fmt.Errorf("device %s: stored %s: %w", d.id, s.name(), err)
		}
	}
	d.cfgRev = doc.CfgRev
	for key, cfg := range doc.Config {
		if !d.p.Config.Has(key) {
			continue // a component the model no longer has
		}
		v, err := jsonv.Parse(cfg)
		obj, ok := v.(*jsonv.Object)
		if err != nil || !ok {
			return fmt.Errorf("device %s: stored config of %s is not a JSON object", d.id, key)
		}
		if d.cfgOver == nil {
			d.cfgOver = map[string]*jsonv.Object{}
		}
		d.cfgOver[key] = obj
	}
	return nil
}

// stateLocked is the device's stored state as it is now; the caller holds
// d.mu. A change builds the document it wants from it, stores it with
// saveLocked, and only then changes the device: a refused save changes
// nothing.
func (d *Device) stateLocked() (stateDoc, error) {
	doc := stateDoc{CfgRev: d.cfgRev}
	if err := d.saveServicesLocked(&doc); err != nil {
		return doc, err
	}
	if len(d.cfgOver) > 0 {
		doc.Config = make(map[string]json.RawMessage, len(d.cfgOver))
		for k, o := range d.cfgOver {
			b, err := d.render(o, nil)
			if err != nil {
				return doc, err
			}
			doc.Config[k] = b
		}
	}
	return doc, nil
}

// saveLocked stores doc; the caller holds d.mu.
func (d *Device) saveLocked(doc stateDoc) error {
	if d.store == nil {
		return nil
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := d.store.Save(append(b, '\n')); err != nil {
		d.log.Error("device: cannot store the device state", "err", err)
		return errStore
	}
	return nil
}
