// Package device is a kit for a whole Shelly Gen2+ device on top of
// package shellyws: you name the components, the kit answers the Shelly
// namespace, every component's methods and the notifications as a real
// device does, on the outbound websocket and on the device's own HTTP and
// websocket channels (shellyws.Handler).
//
// # A device of your own
//
// NewModel describes the kind of device: its Shelly.GetDeviceInfo (Info)
// and its components, each a Spec (SwitchSpec, InputSpec, CoverSpec,
// LightSpec, TemperatureSpec, HumiditySpec, DevicePowerSpec, EMSpec,
// EM1Spec, or CustomSpec for one the kit has no type for). New makes one
// unit of it: its id, its stores (Options.StateDir keeps everything in
// files), its server and password. Run keeps it connected until its
// context ends; Start does the same without blocking, and a connected
// device that is idle then holds no goroutine, so a process can run a
// fleet of thousands (Wait waits for the end).
//
// The hardware side reaches the device through handles: Device.Switch
// (OnOutput drives the relay, SetMeter feeds the meter), Device.Input
// (SetState, Push), Device.Cover, Device.Light, and Device.Update with its
// typed forms SetTemperature, SetHumidity and SetBattery for readings. The
// kit turns every change into a NotifyStatus delta of what changed, with
// "ts" set, and events into NotifyEvent; you never build a frame.
//
// # What the device answers
//
//   - Shelly.GetDeviceInfo (also GET /shelly), GetStatus, GetConfig,
//     ListMethods (what the components make), GetComponents (paged, as on
//     the firmware), Reboot (delay_ms; the answer leaves first, protocol
//     section 11) and SetAuth.
//   - For every component <Type>.GetStatus and <Type>.GetConfig, and
//     <Type>.SetConfig: a partial deep merge checked against the types the
//     config has (-103 naming the key, -105 for a missing id), stored
//     before the answer, sys.cfg_rev up by one, then a NotifyStatus of sys
//     and a config_changed event (protocol section 15.1). WiFi, MQTT,
//     Cloud and BLE changes report restart_required. sys.device.name is the
//     device's name everywhere at once.
//   - The actions of the typed components: Switch.Set and Toggle (with
//     toggle_after; initial_state at boot; energy counted while on),
//     Cover.Open, Close, Stop and GoToPosition (the position moves over
//     time), Light/RGB/RGBW/CCT.Set and Toggle (brightness).
//   - Shelly.CheckForUpdate and Shelly.Update (by stage or url): the
//     ota_* events over Options.OTATime, then a reboot into the new
//     version, which is stored (protocol section 15.2). The offer is the
//     dump's, Options.UpdateStable/UpdateBeta's, or Device.OfferUpdates'.
//   - Webhook.* (real HTTP GETs when switches, inputs and readings fire,
//     off the request path and bounded, with ${…} tokens, conditions and
//     repeat_period), Script.* (code stored byte-exact; no script engine),
//     KVS.* (with etags) and Schedule.* (cron timespecs and
//     @sunrise/@sunset, run on the host clock in sys.location.tz), each
//     with its revision in sys status (protocol sections 15.3 to 15.6).
//   - Ws.GetConfig, SetConfig and GetStatus, from package shellyws.
//
// Everything a server sets — configs, cfg_rev, the installed firmware,
// hooks, scripts, KVS entries, jobs — is stored before the answer goes out
// (Options.State, or files in Options.StateDir) and survives a reboot, an
// update and a restart of the process (protocol section 15.7).
//
// Unknown methods get 404 "No handler for <method>".
//
// # Real models
//
// Package device/profile holds 77 real devices' dumps (Gen2, Gen3, Gen4):
// profile.Builtin returns one as a Model, and a device of it answers as the
// captured device did — same keys in the same order, same shapes, same
// number literals — with its own id, MAC and state. Only per-device state
// is kept per device: a process can run thousands.
//
// # Sleeping devices
//
// A model whose sys.wakeup_period is above 0 (or Options.WakeupPeriod)
// sleeps: Run (or Start) runs its wake cycle on timers, with no goroutine
// and no connection between wakes (protocol section 9).
//
// # Time
//
// Everything time-dependent (uptime, unixtime, energy, cover position) is
// computed when asked: no ticker per device (Options.Telemetry, when on,
// arms one timer per device).
package device
