package device

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/jsonv"
)

// A service is a stored part of a device beyond its components (protocol
// section 15): KVS, webhooks, scripts, schedules, firmware. Each keeps its
// per-device state in a field of Device (nil until first used, so an idle
// fleet holds none), a section of the stored document, and maybe fields of
// sys status. Methods ending in Locked run with d.mu held.
type service interface {
	// name is the section of the stored document.
	name() string
	// register adds the service's methods to a model's table, where the
	// model has the service.
	register(p *Model, handle func(method string, h handler))
	// load restores the device's state from its stored section; raw is
	// nil when nothing is stored. It runs in New, before the device is
	// shared.
	load(d *Device, raw json.RawMessage) error
	// saveLocked returns the section to store, nil for nothing.
	saveLocked(d *Device) (json.RawMessage, error)
	// sysLocked sets the service's fields of sys status (e.g. kvs_rev),
	// for keys the status has.
	sysLocked(d *Device, set func(key string, v any))
	// bootLocked runs when the device boots (New, a reboot, a wake): what
	// was in RAM is gone.
	bootLocked(d *Device, now time.Time)
	// stopLocked stops the service's timers when Run ends.
	stopLocked(d *Device)
}

// services are every device's, in the order their sections are stored.
var services = []service{kvsService{}, webhookService{}, scriptService{}, scheduleService{}, firmwareService{}}

// serviceMethod is one method of a service.
type serviceMethod struct {
	name string
	h    handler
}

// registerMethods adds methods to a model's table: every one where the
// model has no captured Shelly.ListMethods, else those the capture lists
// (it is served exactly as captured).
func registerMethods(p *Model, handle func(string, handler), methods []serviceMethod) {
	for _, m := range methods {
		if p.Methods == nil || listed(p.Methods, m.name) {
			handle(m.name, m.h)
		}
	}
}

// listed reports whether methods holds name, in any case.
func listed(methods []string, name string) bool {
	return slices.ContainsFunc(methods, func(m string) bool { return strings.EqualFold(m, name) })
}

// saveServicesLocked fills doc with every service's section.
func (d *Device) saveServicesLocked(doc *stateDoc) error {
	for _, s := range services {
		raw, err := s.saveLocked(d)
		if err != nil {
			return err
		}
		if raw == nil {
			continue
		}
		if doc.Services == nil {
			doc.Services = map[string]json.RawMessage{}
		}
		doc.Services[s.name()] = raw
	}
	return nil
}

// saveSectionLocked stores the device's state with name's section
// replaced by raw; the caller changes its state only when this succeeds,
// so a refused save changes nothing.
func (d *Device) saveSectionLocked(name string, raw json.RawMessage) error {
	doc, err := d.stateLocked()
	if err != nil {
		return err
	}
	if doc.Services == nil {
		doc.Services = map[string]json.RawMessage{}
	}
	doc.Services[name] = raw
	return d.saveLocked(doc)
}

// missingArg answers a request without a parameter it needs, in the
// firmware's words.
func missingArg(name string) error {
	return shellyws.Errorf(shellyws.CodeInvalidArgument, "Missing required argument '%s'!", name)
}

// errNoID answers an id the device has no script or schedule job for.
func errNoID(id int) error {
	return shellyws.Errorf(shellyws.CodeNotFound, "Argument 'id', value %d not found!", id)
}

// sysRevChanged tells the server of a service's new revision, sys.<field>
// (schedule_rev, webhook_rev, kvs_rev), where the model reports it; the
// caller holds d.notifyMu.
func (d *Device) sysRevChanged(field string, rev int) {
	if d.p.Status.Object("sys").Has(field) {
		d.notify(map[string]any{"sys": map[string]any{field: rev}})
	}
}

// event is something a component did that webhooks may fire on, e.g.
// {Component: "switch", ID: 0, Event: "switch.on"}.
type event struct {
	Component string // the component type
	ID        int
	Event     string         // the webhook event type, e.g. "input.button_push"
	Attrs     map[string]any // the event's attributes (ev.* in URL tokens)
}

// emit tells the services of an event; the caller may hold d.notifyMu, never
// d.mu: firing only queues requests.
func (d *Device) emit(ev event) {
	d.fireHooks(ev)
}

var _ = jsonv.Patch{} // services render through jsonv
