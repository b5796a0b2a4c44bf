package device

import (
	"encoding/json"
	"time"
)

// scriptService is Script.* (protocol section 15.4). Stub: filled in by the
// issue-20 work.
type scriptService struct{}

func (scriptService) name() string                                { return "scripts" }
func (scriptService) register(*Model, func(string, handler))      {}
func (scriptService) load(*Device, json.RawMessage) error         { return nil }
func (scriptService) saveLocked(*Device) (json.RawMessage, error) { return nil, nil }
func (scriptService) sysLocked(*Device, func(string, any))        {}
func (scriptService) bootLocked(*Device, time.Time)               {}
func (scriptService) stopLocked(*Device)                          {}

// scriptState is a device's state of the service; stub.
type scriptState struct{}
