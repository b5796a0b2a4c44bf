// Package evws is the client side of a websocket (RFC 6455) for fleets: a
// connection that is idle holds no goroutine and no buffer.
//
// On Linux a connection whose socket offers a file descriptor is read by a
// poller: one goroutine per Poller waits on an epoll set, itself waited on
// through the Go runtime's network poller, so an idle fleet parks no thread.
// A frame that arrives whole is handed to the Handler straight from the
// poller's buffer; only a frame split across reads is copied, and only
// until it is complete. Other connections (another OS, or a dial hook
// returning a conn without a descriptor) are read by one goroutine each,
// with the same framing and the same callbacks.
//
// Handler methods run on the poller (or the reading goroutine) and must not
// block: a request handler runs elsewhere, and PauseRead applies back
// pressure. Writes are made by the caller's goroutine, one frame at a time,
// each bounded by the write timeout. Pings, pongs and close replies the
// poller owes are written without blocking it: at once if the socket takes
// them, otherwise by the writer in progress or a short-lived goroutine.
//
// The keepalive pings only when nothing arrived for the interval, and
// fails the connection when nothing arrives within the timeout after it.
package evws
