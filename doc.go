// Package shellyws implements the device side of the Shelly Gen2 Outbound
// Websocket component: a device dials out to a configured server (ws:// or
// wss://), keeps that connection up through every failure, answers the
// server's RPC requests over it and pushes notifications — a complete
// NotifyFullStatus first on every connect, then NotifyStatus deltas and
// NotifyEvents.
//
// The entry points:
//
//   - New creates the Component of one device; Component.Run keeps its
//     connection up until its context ends.
//   - Config, MergeConfig and a ConfigStore (MemoryStore, FileStore) hold the
//     component's wire-visible settings, as Ws.GetConfig and Ws.SetConfig
//     see them.
//   - Dispatcher answers the device's other RPC methods; Mux routes them by
//     name, case-insensitively, and Component.Register adds the Ws.* methods.
//   - Component.NotifyStatus and Component.NotifyEvent push notifications
//     through a bounded queue.
//   - Component.State, AwaitConnected and the WithOnConnect/WithOnDisconnect
//     callbacks report the connection.
//   - AfterReply lets a handler act once its answer is on the wire;
//     Component.Restart applies a new config and Component.Reboot restarts
//     the device as a power cycle would (Shelly.Reboot).
//   - Handler serves the same Dispatcher on a device's inbound channels
//     (HTTP GET and POST /rpc, websocket /rpc, GET /shelly).
//   - AuthConfig and an AuthStore (MemoryAuthStore, FileAuthStore) hold the
//     device password's hash; Component.SetAuth and Shelly.SetAuth set it,
//     and the Handler then asks every inbound request but
//     Shelly.GetDeviceInfo for digest credentials. The outbound channel is
//     never challenged.
//   - Component.Wake runs one wake of a sleeping (battery) device: dial,
//     full status, answer while talked to, sleep event, close; HoldAwake,
//     InterruptWake and WithBootClock serve its reboots and its clock.
//
// The subpackage shellywstest stands up a loopback server for unit tests of
// devices built on this package. The wire contract is the one real Gen2
// devices speak; see the README for what the library decided where the
// vendor's documentation is silent.
package shellyws
