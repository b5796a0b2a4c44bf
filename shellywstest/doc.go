// Package shellywstest stands up a loopback server for the Shelly Gen2
// "Outbound Websocket" RPC channel, for unit tests of devices built on
// shellyws, the way net/http/httptest stands up an HTTP server.
//
// The server speaks the server side of the protocol (the Gen2 outbound
// websocket as shellyws implements it; see the shellyws README and
// docs/protocol-decisions.md in its repository): it upgrades a device's handshake offering the json-rpc
// subprotocol, queues each device connection for [Server.Accept], reads every
// frame the device sends, routes responses to pending [Conn.Call]s and queues
// everything else (notifications and anything unexpected) for [Conn.Next]
// and the Expect helpers.
//
// Entry points:
//
//   - [NewServer] and [NewTLSServer] start a ws:// or wss:// server and close
//     it with t.Cleanup; [NewUnstartedServer] with [Server.Start] or
//     [Server.StartTLS] serves programs that have no testing.TB.
//   - [Server.Accept] returns the next device connection; [Conn.ExpectFullStatus],
//     [Conn.ExpectStatus], [Conn.ExpectEvent] and [Conn.Next] read what it sent;
//     [Conn.Call] sends a request and waits for its response.
//   - [Server.RejectNext], [Server.RejectNextWithHeader], [Server.CloseConns],
//     [Server.Stop] and [Server.Restart] play the server misbehaving: refused
//     handshakes (with a Retry-After), close codes, a crash and a comeback on
//     the same address.
//   - [Conn.NextMethod] reads the next frame of one method, skipping the
//     notifications of others that come in between.
//   - For devices built on shellyws: [FastBackoff] makes them reconnect in
//     milliseconds, [StartComponent] runs one for the test and
//     [RunComponent] also waits until it is connected.
//   - [DigestTransport], [ParseChallenge] and [FrameAuth] call a device whose
//     password is set, over HTTP and in RPC frames, without re-deriving the
//     digest.
//
// # When the device is connected
//
// A shellyws device is connected (State reports StateConnected) once its
// NotifyFullStatus is written, and it reads no request before that. So a
// test that has read the full status may send requests at once, and they
// see the device connected; a test that checks the device's own State
// after reading the full status waits with Component.AwaitConnected
// (RunComponent does), since the server may read the frame an instant
// before the device's write returns.
//
// # Frames nobody reads
//
// Each connection keeps the frames the test has not read yet, up to 4,096
// ([DefaultQueueSize]; [WithQueueSize] changes it). Once that many sit
// unread, the server closes the connection with 1008 (policy violation)
// and its Err wraps [ErrQueueOverflow]; the device sees a dropped
// connection and redials. A test whose device keeps publishing while the
// test does not read (a soak, a burst of notifications) reads them with
// [Conn.Next] as they come, or raises the limit.
//
// Every wait takes a context. The helpers ending in T ([Server.AcceptT],
// [Conn.CallT], ...) bound the wait by [DefaultTimeout] and fail the test with
// t.Fatal instead; call them from the test's goroutine only.
//
// A typical test:
//
//	func TestDeviceConnects(t *testing.T) {
//		srv := shellywstest.NewServer(t)
//		dev := newDevice(t, srv.URL()) // the code under test, a *shellyws.Component
//		shellywstest.RunComponent(t, dev)
//		c := srv.AcceptT(t)
//		fs := c.ExpectFullStatusT(t)
//		if _, ok := fs.Status["sys"]; !ok {
//			t.Fatal("full status without sys")
//		}
//		var info struct{ ID string `json:"id"` }
//		c.CallT(t, "Shelly.GetDeviceInfo", nil, &info)
//	}
//
// # Transcript
//
// [WithLogf] receives one line per event, without a trailing newline. "->"
// is a frame from the device, "<-" one from the server, "==" a connection
// or server event. A device is named by its src once one arrived, by its
// remote address before. JSON is shown as sent, cut after 200 bytes with
// "...". The lines:
//
//	== listening ws://127.0.0.1:40123/
//	== connected 127.0.0.1:51234 GET /?token=x subprotocol=json-rpc
//	-> device shellyplus1pm-c049ef8cf4e0: NotifyFullStatus {"ts":1700000000.00,"sys":{...
//	<- server call Shelly.GetDeviceInfo id=1
//	<- server call Shelly.Reboot id=2 {"delay_ms":3500}
//	-> device shellyplus1pm-c049ef8cf4e0: result id=1 {"name":null,"id":"shellyplus1pm-c049ef8cf4e0",...
//	-> device shellyplus1pm-c049ef8cf4e0: error id=3 404 No handler for Nope.Nothing
//	-> device shellyplus1pm-c049ef8cf4e0: request Server.Hello id=8 {}
//	-> device 127.0.0.1:51234: unexpected not json
//	-> device shellyplus1pm-c049ef8cf4e0: binary message of 3 bytes
//	<- server send {"id":"x","method":"ws.getstatus"}
//	<- server close 4001 go away
//	== device shellyplus1pm-c049ef8cf4e0 gone: shellywstest: closed by the server: status = 4001 ...
//	== handshake 3 for /?token=x rejected with 503
//	== handshake 4 from 127.0.0.1:51240 failed: ...
//	== http: TLS handshake error from 127.0.0.1:51242: ...
//	== stopped
//	== restarted ws://127.0.0.1:40123/
//	== closed
package shellywstest
