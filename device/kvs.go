package device

import (
	"encoding/json"
	"time"
)

// kvsService is KVS.* (protocol section 15.5). Stub: filled in by the
// issue-20 work.
type kvsService struct{}

func (kvsService) name() string                                { return "kvs" }
func (kvsService) register(*Model, func(string, handler))      {}
func (kvsService) load(*Device, json.RawMessage) error         { return nil }
func (kvsService) saveLocked(*Device) (json.RawMessage, error) { return nil, nil }
func (kvsService) sysLocked(*Device, func(string, any))        {}
func (kvsService) bootLocked(*Device, time.Time)               {}
func (kvsService) stopLocked(*Device)                          {}

// kvsState is a device's state of the service; stub.
type kvsState struct{}
