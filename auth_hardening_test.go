package shellyws_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// TestAuthIdleClientsDoNotHoldTheSlots: with auth on, websocket clients
// that do not authenticate within the auth timeout of their handshake are
// closed with 1008, so eight of them cannot keep the owner out; a client
// that authenticated stays.
func TestAuthIdleClientsDoNotHoldTheSlots(t *testing.T) {
	const timeout = 300 * time.Millisecond
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithAuthTimeout(timeout)})
	require.NoError(t, d.c.SetAuth(shellyws.PasswordAuth(testDeviceID, testPassword)))
	ctx := testCtx(t)

	// The owner authenticates first and keeps its slot.
	owner := d.dial(t, nil)
	resp, _ := call(t, ctx, owner, `{"id":1,"src":"owner","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	resp, _ = call(t, ctx, owner, `{"id":2,"src":"owner","method":"Ws.GetStatus","auth":`+authObject(nonce, 1, "o")+`}`)
	require.Nil(t, resp.Error)

	// Seven idlers, one of them asking only the exempt method: every slot
	// is taken and the next handshake is refused.
	var idlers []*websocket.Conn
	for i := range defaultMaxClients - 1 {
		c := d.dial(t, nil)
		if i == 0 {
			resp, _ := call(t, ctx, c, `{"id":1,"src":"x","method":"Shelly.GetDeviceInfo"}`)
			require.Nil(t, resp.Error)
		}
		idlers = append(idlers, c)
	}
	_, hs, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
	require.Error(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, hs.StatusCode)

	// After the timeout the idlers are closed with 1008 ...
	for i, c := range idlers {
		_, _, err := c.Read(ctx)
		assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "idler %d: %v", i, err)
	}
	// ... and the owner, who authenticated, is still served.
	resp, _ = call(t, ctx, owner, `{"id":3,"src":"owner","method":"Ws.GetStatus","auth":`+authObject(nonce, 2, "o")+`}`)
	require.Nil(t, resp.Error)
	// A new client gets a slot.
	require.Eventually(t, func() bool {
		c, _, err := websocket.Dial(ctx, d.wsURL(), &websocket.DialOptions{HTTPClient: d.srv.Client()})
		if err != nil {
			return false
		}
		c.CloseNow()
		return true
	}, waitTimeout, 10*time.Millisecond)
}

// TestAuthTimeoutOnlyWithAuth: without a password nobody is closed.
func TestAuthTimeoutOnlyWithAuth(t *testing.T) {
	d := newInboundDevice(t, []shellyws.HandlerOption{shellyws.WithAuthTimeout(50 * time.Millisecond)})
	ctx := testCtx(t)
	c := d.dial(t, nil)
	// Well past the timeout, a request is still answered.
	timer := time.NewTimer(200 * time.Millisecond) // the thing under test is that nothing happens in this time
	<-timer.C
	resp, _ := call(t, ctx, c, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus"}`, 1))
	require.Nil(t, resp.Error)
}

// wrongDigest is a well-formed Authorization header with a wrong password.
func wrongDigest(nonce, method, uri string) string {
	return digestHeader("wrong", nonce, method, uri, "00000001", "w")
}

// TestAuthEveryWrongCredentialCounts: POST /rpc with a wrong auth object
// and a wrong Authorization header is two guesses and counts two
// failures: the lockout comes after half as many requests.
func TestAuthEveryWrongCredentialCounts(t *testing.T) {
	d := newAuthDevice(t)
	nonce := "made-up"
	for i := 1; i <= maxLiveNonces; i++ {
		bad := fixLen(strings.Replace(authObject(nonce, 1, "c"), `"response":"`, `"response":"0`, 1))
		req, err := http.NewRequest(http.MethodPost, d.srv.URL+"/rpc",
			strings.NewReader(fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus","auth":%s}`, i, bad)))
		require.NoError(t, err)
		req.Header.Set("Authorization", wrongDigest(nonce, "POST", "/rpc"))
		res := d.do(t, req)
		if res.status == http.StatusTooManyRequests {
			assert.Equal(t, maxLiveNonces/2, i, "two guesses a request: locked out after %d requests", maxLiveNonces/2)
			return
		}
		nonce, _ = challenge401(t, res)
	}
	t.Fatalf("no lockout after %d requests of two wrong credentials each", maxLiveNonces)
}

// TestAuthRebootForgetsNonces: nonces live in RAM; after Shelly.Reboot a
// nonce issued before it no longer authenticates (and is not "stale":
// the device does not know it).
func TestAuthRebootForgetsNonces(t *testing.T) {
	booted := make(chan struct{}, 1)
	d := newAuthDevice(t, shellyws.WithBootTime(0), shellyws.WithOnBoot(func() { booted <- struct{}{} }))
	runDevice(t, d.c)
	uri := "/rpc/Ws.GetStatus"
	nonce, _ := challenge401(t, d.get(t, uri, ""))
	require.Equal(t, http.StatusOK, d.getAuth(t, uri, digestHeader(testPassword, nonce, "GET", uri, "00000001", "a")).status)

	d.c.Reboot()
	awaitChan(t, booted, "the boot")
	require.Eventually(t, func() bool { return d.get(t, "/shelly", "").status != http.StatusServiceUnavailable },
		waitTimeout, time.Millisecond, "the device is back")
	fresh, stale := challenge401(t, d.getAuth(t, uri, digestHeader(testPassword, nonce, "GET", uri, "00000002", "a")))
	assert.False(t, stale, "a nonce from before the reboot is unknown, not stale")
	assert.NotEqual(t, nonce, fresh)
	require.Equal(t, http.StatusOK, d.getAuth(t, uri, digestHeader(testPassword, fresh, "GET", uri, "00000001", "b")).status)
}

// TestAuthNCAsHexString: matterbridge-shelly sends the auth object's nc
// as 8 hex digits ("nc":"00000001") and hashes it as sent; aioshelly
// sends a number (or none) and hashes it in decimal. Both work, each with
// the form it sent, and replays stay refused.
func TestAuthNCAsHexString(t *testing.T) {
	d := newAuthDevice(t)
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	resp, _ := call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	// matterbridge's shape: nonce string, cnonce number, nc hex string.
	mb := func(nc, hashed string) string {
		return fmt.Sprintf(`{"realm":%q,"username":"admin","nonce":%q,"cnonce":123456,"nc":%s,"response":%q,"algorithm":"SHA-256"}`,
			testDeviceID, nonce, nc, frameResponse(testHA1(), nonce, hashed, "123456"))
	}
	for i, tc := range []struct {
		nc, hashed string
		ok         bool
	}{
		{`"00000001"`, "00000001", true},
		{`"00000002"`, "00000002", true},
		{`"00000002"`, "00000002", false}, // a replay
		{`"0000000a"`, "0000000a", true},
		{`"0000000A"`, "0000000A", false}, // 10 again, however it is written
		{`"00000003"`, "3", false},        // hashed otherwise than sent
		{`4`, "4", true},                  // a number, in decimal
		{`"0000000g"`, "0000000g", false}, // not hex
		{`"000000001"`, "000000001", false},
		{`""`, "", false},
		{`"00000000"`, "00000000", false}, // nc counts from 1
		{`"0x000005"`, "0x000005", false},
	} {
		resp, _ = call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus","auth":%s}`, 10+i, mb(tc.nc, tc.hashed)))
		if tc.ok {
			assert.Nil(t, resp.Error, "nc %s", tc.nc)
		} else {
			frameChallenge(t, resp.Error)
		}
	}
}

// TestAuthNCWindow: any nc not used before within the window below the
// highest one seen is accepted, in any order; a reused one, or one below
// the window, is refused.
func TestAuthNCWindow(t *testing.T) {
	d := newAuthDevice(t)
	uri := "/rpc/Ws.GetStatus"
	nonce, _ := challenge401(t, d.get(t, uri, ""))
	get := func(nc int) int {
		return d.getAuth(t, uri, digestHeader(testPassword, nonce, "GET", uri, fmt.Sprintf("%08x", nc), fmt.Sprint("c", nc))).status
	}
	// 64 requests arriving in any order.
	order := rand.Perm(64)
	for _, i := range order {
		assert.Equal(t, http.StatusOK, get(i+1), "nc %d", i+1)
	}
	for _, nc := range []int{1, 32, 64} {
		assert.Equal(t, http.StatusUnauthorized, get(nc), "reused nc %d", nc)
	}
	// A jump ahead, then the gap behind it within the window.
	top := 64 + ncWindow
	assert.Equal(t, http.StatusOK, get(top))
	assert.Equal(t, http.StatusOK, get(top-ncWindow+1), "the lowest nc in the window")
	assert.Equal(t, http.StatusUnauthorized, get(top-ncWindow), "below the window")
	assert.Equal(t, http.StatusOK, get(top-1))
}

// TestDigestTransportConcurrent: one DigestTransport shared by 64
// goroutines gets every answer, with no 401 and no 429.
func TestDigestTransportConcurrent(t *testing.T) {
	d := newAuthDevice(t)
	client := &http.Client{Transport: &shellywstest.DigestTransport{Password: testPassword, Base: d.srv.Client().Transport}}
	const goroutines, requests = 64, 160
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	next := make(chan int, requests)
	for i := range requests {
		next <- i
	}
	close(next)
	for range goroutines {
		wg.Go(func() {
			for range next {
				req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, d.srv.URL+"/rpc/Ws.GetStatus", nil)
				if !assert.NoError(t, err) {
					return
				}
				resp, err := client.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, map[int]int{http.StatusOK: requests}, statuses)
}

// TestAuthSleepForgetsNonces: deep sleep loses RAM too: a nonce from one
// wake is unknown in the next.
func TestAuthSleepForgetsNonces(t *testing.T) {
	c := newSleeper(t, shellyws.DefaultConfig(), shellyws.WithAwakeIdle(200*time.Millisecond),
		shellyws.WithAuthStore(shellyws.NewMemoryAuthStore(shellyws.PasswordAuth("shellyplusht-e86beae8ca14", testPassword))))
	base := serveInbound(t, c)
	uri := "/rpc/Ws.GetStatus"
	ha1 := shellyws.ComputeHA1(c.ID(), testPassword)
	get := func(authz string) *http.Response {
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, base+uri, nil)
		require.NoError(t, err)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	header := func(nonce, nc string) string {
		resp := sha(ha1 + ":" + nonce + ":" + nc + ":c:auth:" + sha("GET:"+uri))
		return fmt.Sprintf(`Digest username="admin", realm=%q, nonce=%q, uri=%q, cnonce="c", nc=%s, qop=auth, response=%q, algorithm=SHA-256`,
			c.ID(), nonce, uri, nc, resp)
	}

	out := startWake(t, c)
	ch, err := shellywstest.ParseWWWAuthenticate(get("").Header.Get("WWW-Authenticate"))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, get(header(ch.Nonce, "00000001")).StatusCode)
	awaitWake(t, out)

	startWake(t, c)
	resp := get(header(ch.Nonce, "00000002"))
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	fresh, err := shellywstest.ParseWWWAuthenticate(resp.Header.Get("WWW-Authenticate"))
	require.NoError(t, err)
	assert.False(t, fresh.Stale, "unknown after the sleep, not stale")
}
