//go:build linux

package blackbox

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// childEnv, when set, turns the test binary into the bare echo device (see
// bare_test.go) instead of running tests.
const childEnv = "SHELLYWS_BLACKBOX_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runBare())
	}
	goleak.VerifyTestMain(m)
}
