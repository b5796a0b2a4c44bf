package device

import (
	"encoding/json"
	"time"
)

// scheduleService is Schedule.* (protocol section 15.6). Stub: filled in by the
// issue-20 work.
type scheduleService struct{}

func (scheduleService) name() string                                { return "schedules" }
func (scheduleService) register(*Model, func(string, handler))      {}
func (scheduleService) load(*Device, json.RawMessage) error         { return nil }
func (scheduleService) saveLocked(*Device) (json.RawMessage, error) { return nil, nil }
func (scheduleService) sysLocked(*Device, func(string, any))        {}
func (scheduleService) bootLocked(*Device, time.Time)               {}
func (scheduleService) stopLocked(*Device)                          {}

// scheduleState is a device's state of the service; stub.
type scheduleState struct{}
