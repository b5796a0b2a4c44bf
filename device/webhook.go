package device

import (
	"encoding/json"
	"time"
)

// webhookService is Webhook.* (protocol section 15.3). Stub: filled in by the
// issue-20 work.
type webhookService struct{}

func (webhookService) name() string                                { return "webhooks" }
func (webhookService) register(*Model, func(string, handler))      {}
func (webhookService) load(*Device, json.RawMessage) error         { return nil }
func (webhookService) saveLocked(*Device) (json.RawMessage, error) { return nil, nil }
func (webhookService) sysLocked(*Device, func(string, any))        {}
func (webhookService) bootLocked(*Device, time.Time)               {}
func (webhookService) stopLocked(*Device)                          {}

// fireHooks runs the webhooks of ev; stub.
func (d *Device) fireHooks(event) {}

// hookState is a device's state of the service; stub.
type hookState struct{}
