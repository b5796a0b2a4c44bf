package shellyws_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// With WithBootClock, "ts" counts from the boot, but nonces still age on
// the clock: a nonce an hour old is stale whatever the boot clock says.
func TestAuthNoncesAgeOnTheClockWithBootClock(t *testing.T) {
	clock := newFakeClock()
	d := newAuthDevice(t, shellyws.WithClock(clock.Now), shellyws.WithBootClock())
	n, _ := challenge401(t, d.get(t, "/rpc/Ws.GetStatus", ""))
	ok := d.getAuth(t, "/rpc/Ws.GetStatus", digestHeader(testPassword, n, "GET", "/rpc/Ws.GetStatus", "00000001", "s"))
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	clock.Advance(nonceLifetime)
	res := d.getAuth(t, "/rpc/Ws.GetStatus", digestHeader(testPassword, n, "GET", "/rpc/Ws.GetStatus", "00000002", "s"))
	_, stale := challenge401(t, res)
	assert.True(t, stale)
}
