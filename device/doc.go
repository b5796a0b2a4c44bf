// Package device simulates a Shelly Gen2+ device of any model on top of the
// public shellyws API, faithfully enough that servers of the Outbound
// Websocket (Home Assistant's Shelly integration, the vendor's Fleet Manager
// and sample server) treat it as that model. The simulator command,
// benchmarks and soak tests build their devices with it.
//
// A device plays a profile (package profile): a real device's answers to
// Shelly.GetDeviceInfo, Shelly.GetConfig and Shelly.GetStatus, parsed once
// and shared by every device of the model. The device answers those
// methods, <Namespace>.GetStatus and <Namespace>.GetConfig of every
// component of the dump, Shelly.GetComponents, Shelly.ListMethods and
// Shelly.Reboot exactly as the captured device did — same keys in the same
// order, same shapes — with its own id and MAC (every string of the dump
// holding the captured MAC is rendered with the device's), its own sys
// runtime fields (uptime, time, unixtime, cfg_rev, restart_required,
// reset_reason where the model reports them), and ws from its component
// (added where the dump lacks it). Only per-device state is kept per device:
// outputs, positions, energy counters, clocks.
//
// A new device starts in the captured device's state (outputs, positions,
// sources, brightness, readings, cfg_rev); Boot, which a reboot calls,
// sets every source to "init" and each switch as its initial_state says.
// Shelly.GetComponents with dynamic_only answers the dump's captured answer
// (an empty page when it has none); without it, every component, paged.
//
// Components behave as on the firmware: switch (Set, Toggle, toggle_after,
// metering of apower, current and aenergy), cover (Open, Close, Stop,
// GoToPosition; the position moves over time with NotifyStatus deltas),
// light, rgb, rgbw and cct (Set, Toggle, brightness), input (events through
// HandleSim), and with Options.Telemetry the readings of switches,
// temperature, humidity, devicepower, illuminance, em, em1, pm1 and
// voltmeter drift and are pushed. Everything else is read-only from the
// dump. Unknown methods get 404 "No handler for <method>".
//
// Shelly.ListMethods answers the dump's list when it has one; otherwise the
// list is derived from the methods the device serves: the Shelly methods,
// GetStatus/GetConfig of each component type, the actions of the types that
// behave, and Ws.GetConfig, Ws.SetConfig, Ws.GetStatus.
//
// Changes send a NotifyStatus delta such as
// {"switch:0":{"id":0,"output":true,"source":"WS_in"}}; after a Ws.SetConfig
// a NotifyEvent {"component":"sys","event":"config_changed",
// "restart_required":true,"cfg_rev":N} follows, then the delta
// {"sys":{"cfg_rev":N,"restart_required":true}}. Shelly.Reboot answers null
// and, once the answer is on the wire and delay_ms is over, reboots as a
// power cycle looks (protocol section 11): shellyws.Component.Reboot drops
// every connection and the notification queue, Boot resets the RAM state,
// Options.OnDown and OnUp close and reopen the web server, and after the
// boot time the device dials the server its stored config names, so a
// server that changed it with Ws.SetConfig sees the device move there.
//
// A model whose dump has sys.wakeup_period above 0 (or any model with
// Options.WakeupPeriod) is a sleeping device: Start runs its wake cycle on
// timers, with no goroutine and no connection between wakes (see Start and
// protocol section 9).
//
// Everything time-dependent (uptime, unixtime, energy, cover position) is
// computed when asked: a process can hold thousands of devices without a
// ticker per device (Telemetry, when on, arms one timer per device).
package device
