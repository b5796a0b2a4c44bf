// Package mqtt is the MQTT RPC channel of a Gen2 device (protocol section
// 16.3): a client of the configured broker that serves the component's
// Dispatcher on <prefix>/rpc and publishes its notifications, the way
// ioBroker, ha-shellies-discovery-gen2 and user scripts expect.
//
// The entry points:
//
//   - Config is the wire-visible mqtt config (Mqtt.GetConfig's keys).
//   - New builds a Client of a shellyws.Component from a Config; Client.Run
//     connects, serves and reconnects until its context ends, then says
//     goodbye (<prefix>/online false, DISCONNECT) and returns once every
//     goroutine it started has exited.
//   - Client.Status is Mqtt.GetStatus's answer, {"connected":…}.
//
// On the wire: MQTT 3.1.1, clean session, keep-alive 60 s, a will of
// <prefix>/online false (QoS 1, retained). After CONNACK the client
// subscribes to <prefix>/rpc, <prefix>/rpc/# and <prefix>/command (QoS 1),
// publishes <prefix>/online true (QoS 1, retained), then NotifyStatus
// {"mqtt":{"connected":true}} goes to every channel. A request is answered
// at QoS 1 on <src>/rpc; one without src is executed and not answered.
// Notifications (rpc_ntf) go to <prefix>/events/rpc at QoS 1, not retained,
// with dst <prefix>/events; with status_ntf each NotifyStatus is followed
// by the whole status of each component it names on <prefix>/status/<key>,
// and "status_update" on <prefix>/command publishes every component's.
// Requests over MQTT need no authentication, as on a device.
//
// It is the only package of the module that imports
// github.com/eclipse/paho.mqtt.golang (MQTT 3.1.1, what the firmware and
// ioBroker's broker speak); a device that does not use MQTT does not link it.
package mqtt
