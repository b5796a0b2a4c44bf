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
//     connection up until its context ends. Component.Start does the same
//     without blocking, for fleets: an idle connected device then holds no
//     goroutine (one poller per process reads every outbound connection);
//     Component.Wait and Component.Done say when it has stopped.
//   - Config, MergeConfig and a ConfigStore (MemoryStore, FileStore) hold the
//     component's wire-visible settings, as Ws.GetConfig and Ws.SetConfig
//     see them.
//   - Dispatcher answers the device's other RPC methods; Mux routes them by
//     name, case-insensitively, and Component.Register adds the Ws.* methods
//     and Shelly.SetAuth. One request path serves every channel: a Request
//     says which one it came on (Request.Channel: the outbound connection,
//     an inbound websocket client, HTTP), and AfterReply lets its handler
//     act once the answer is on the wire.
//   - Component.NotifyStatus and Component.NotifyEvent push notifications
//     through a bounded queue.
//   - Component.State, AwaitConnected and the WithOnConnect/WithOnDisconnect
//     callbacks report the connection.
//   - Component.Restart applies a stored config (close 1012, redial at
//     once); Component.Reboot restarts the device as a power cycle would
//     (Shelly.Reboot, called from AfterReply): connections dropped, queue
//     emptied, a fresh NotifyFullStatus after the boot time.
//   - Handler serves the same Dispatcher on a device's inbound channels
//     (HTTP GET and POST /rpc, websocket /rpc, GET /shelly); NewHTTPServer
//     and LimitListener put it on a web server with a device's limits.
//   - ServeUDP serves it over UDP RPC, one frame per datagram;
//     Component.ServeFrame and Component.Subscribe connect channels that
//     live elsewhere, such as package mqtt's MQTT RPC.
//   - AuthConfig and an AuthStore (MemoryAuthStore, FileAuthStore) hold the
//     device password's hash; Component.SetAuth and Shelly.SetAuth set it,
//     and the Handler then asks every inbound request but
//     Shelly.GetDeviceInfo and GET /shelly for digest credentials (SHA-256,
//     the firmware's nonce rules and lockout). The outbound channel is
//     never challenged.
//   - Component.Wake runs one wake of a sleeping (battery) device instead
//     of Run: dial, full status, answer while talked to on any channel,
//     sleep event, close with 1000. HoldAwake keeps it awake for a pending
//     reboot, InterruptWake and Reboot end a wake early, and WithBootClock
//     gives "ts" the clock of a device whose time is not set yet.
//
// The subpackage shellywstest stands up a loopback server for unit tests of
// devices built on this package, with helpers for the device's side
// (RunComponent, FastBackoff) and digest clients for a device that has a
// password. The wire contract is the one real Gen2 devices speak; where the
// vendor's documentation is silent, docs/protocol-decisions.md in the
// repository says what the library decided; docs/design.md names the
// package's parts (outbound peer, inbound Handler, sleep and wake, auth,
// the request path in rpc.go) and the file that holds each.
package shellyws
