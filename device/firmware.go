package device

import (
	"encoding/json"
	"time"
)

// firmwareService is Shelly.CheckForUpdate, Shelly.Update and the installed firmware (protocol section 15.2). Stub: filled in by the
// issue-20 work.
// DefaultOTATime is how long a simulated update takes; see Options.OTATime.
const DefaultOTATime = 10 * time.Second

type firmwareService struct{}

func (firmwareService) name() string                                { return "firmware" }
func (firmwareService) register(*Model, func(string, handler))      {}
func (firmwareService) load(*Device, json.RawMessage) error         { return nil }
func (firmwareService) saveLocked(*Device) (json.RawMessage, error) { return nil, nil }
func (firmwareService) sysLocked(*Device, func(string, any))        {}
func (firmwareService) bootLocked(*Device, time.Time)               {}
func (firmwareService) stopLocked(*Device)                          {}

// firmwareState is a device's state of the service; stub.
type firmwareState struct{}
