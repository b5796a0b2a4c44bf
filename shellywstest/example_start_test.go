package shellywstest_test

import (
	"testing"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// StartComponent when the test wants to see the device's first attempts
// itself, here a handshake the server refuses, before it connects.
func ExampleStartComponent() {
	var t *testing.T // the test's, in func TestDevice(t *testing.T)
	srv := shellywstest.NewServer(t)
	srv.RejectNext(1, 500)
	// A config written inline: Go 1.26's new takes the URL for the
	// *string server field.
	cfg := shellyws.Config{Enable: true, Server: new(srv.URL())}
	dev, err := shellyws.New("shellyplus1pm-c049ef8cf4e0",
		shellywstest.FastBackoff(), shellyws.WithConfigStore(shellyws.NewMemoryStore(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	shellywstest.StartComponent(t, dev) // returns at once; Run is awaited at cleanup
	conn := srv.AcceptT(t)              // the attempt after the refused one
	conn.ExpectFullStatusT(t)
}
