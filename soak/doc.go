// Package soak holds the fault-injection soak test of shellyws: hundreds of
// simulated devices (device) in one process against a
// loopback server that, at random, refuses handshakes with 4xx and 5xx,
// closes with every close code a server uses, drops connections, stalls its
// reads or its writes, sends malformed and oversized frames and restarts.
//
// When the faults stop, the test asserts that every device is connected again
// within the backoff cap plus a margin and answers a request; that every
// request the server sent was answered or its connection was lost (and none
// was lost on a connection the server closed gracefully); that the first
// frame of every connection was NotifyFullStatus; that no notification queue
// exceeded its bound and that drops were counted; that goroutines and heap
// return to their baseline; and that no handler panicked.
//
// The package has no non-test code. Run it with
//
//	go test ./soak                                  # about a minute, as CI does
//	go test ./soak -soak.duration=10m -timeout 20m  # the long run
//	go test ./soak -soak.seed=N                     # replay a fault schedule
//
// The seed is printed at the start of every run; it fixes the faults each
// connection meets (timing still varies from run to run).
package soak
