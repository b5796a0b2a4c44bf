// Package shellywstest stands up a loopback server for the Shelly Gen2
// "Outbound Websocket" RPC channel, for unit tests of devices built on
// shellyws, the way net/http/httptest stands up an HTTP server.
//
// The server speaks the server side of the protocol (see protocol.md in the
// repository): it upgrades a device's handshake offering the json-rpc
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
//   - [Server.RejectNext], [Server.CloseConns], [Server.Stop] and
//     [Server.Restart] play the server misbehaving: refused handshakes, close
//     codes, a crash and a comeback on the same address.
//
// Every wait takes a context. The helpers ending in T ([Server.AcceptT],
// [Conn.CallT], ...) bound the wait by [DefaultTimeout] and fail the test with
// t.Fatal instead; call them from the test's goroutine only.
//
// A typical test:
//
//	func TestDeviceConnects(t *testing.T) {
//		srv := shellywstest.NewServer(t)
//		startDevice(t, srv.URL()) // the code under test dials srv.URL()
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
// [WithLogf] receives one line per event, without a trailing newline:
//
//	== listening ws://127.0.0.1:40123/
//	== connected 127.0.0.1:51234 GET / subprotocol=json-rpc
//	-> device shellyplus1pm-c049ef8cf4e0: NotifyFullStatus {"ts":1700000000.00,"sys":{...
//	<- server call Shelly.GetDeviceInfo id=1
//	-> device shellyplus1pm-c049ef8cf4e0: result id=1 {"id":"shellyplus1pm-c049ef8cf4e0",...
//	-> device shellyplus1pm-c049ef8cf4e0: error id=2 404 No handler for Nope.Nothing
//	<- server send {"id":"x","method":"Sys.GetStatus"}
//	<- server close 4001 going away
//	== device shellyplus1pm-c049ef8cf4e0 gone: ...
//	== handshake 3 rejected with 503
//
// "->" is a frame from the device, "<-" one from the server and "==" a
// connection or server event. A device is named by its src once one arrived,
// by its remote address before. JSON is shown as sent, cut at about 200
// bytes with "...".
package shellywstest
