// Package device simulates a Shelly Plus 1PM on top of the public shellyws
// API, faithfully enough that servers of the Outbound Websocket (Home
// Assistant's Shelly integration, the vendor's Fleet Manager and sample
// server) treat it as a device. The simulator command, benchmarks and soak
// tests build their devices with it.
//
// New builds a Device from Options; Device.Run keeps its connection up until
// the context ends. The device answers
//
//   - Shelly.GetDeviceInfo, Shelly.GetStatus, Shelly.GetConfig,
//     Shelly.GetComponents, Shelly.ListMethods and Shelly.Reboot;
//   - Sys, WiFi, Cloud, MQTT and BLE .GetStatus and .GetConfig;
//   - Switch.Set, Switch.Toggle, Switch.GetStatus, Switch.GetConfig,
//     Input.GetStatus and Input.GetConfig (all with "id": 0);
//   - Ws.GetConfig, Ws.SetConfig and Ws.GetStatus (from the component).
//
// and sends what a real device sends: NotifyFullStatus (the whole
// Shelly.GetStatus) on every connect; a NotifyStatus delta such as
// {"switch:0":{"id":0,"output":true,"source":"WS_in"}} for every switch
// change; and after a Ws.SetConfig a NotifyEvent
// {"component":"sys","event":"config_changed","restart_required":true,"cfg_rev":N}
// followed by the delta {"sys":{"cfg_rev":N,"restart_required":true}}.
// Shelly.Reboot answers null, then restarts the component, so a server that
// changed the ws config with Ws.SetConfig sees the device move to the new
// server.
//
// sys.mac is the upper-cased MAC part of the id, as servers derive it from
// src. Everything time-dependent (uptime, unixtime, energy) is computed when
// asked: a process can hold thousands of devices without a ticker per device.
package device
