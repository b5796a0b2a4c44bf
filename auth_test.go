package shellyws_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/internal/testkit"
	"github.com/shellyws/shellyws/shellywstest"
)

const testPassword = "s3cret pass"

// The firmware's nonce rules (protocol.md section 10, nc window in
// docs/protocol-decisions.md), written here as the wire contract states
// them rather than taken from the library.
const (
	nonceLifetime   = time.Hour
	maxLiveNonces   = 32
	lockoutDuration = 2 * time.Second
	ncWindow        = 128
)

// The hashes are computed here by hand, independently of the library and of
// shellywstest's helper, from protocol.md section 10.
func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func testHA1() string { return sha("admin:" + testDeviceID + ":" + testPassword) }

// frameResponse is the response of an auth object: nc in plain decimal and
// HA2 of "dummy_method:dummy_uri".
func frameResponse(ha1, nonce, nc, cnonce string) string {
	return sha(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + sha("dummy_method:dummy_uri"))
}

func authObject(nonce string, nc int, cnonce string) string {
	return fmt.Sprintf(`{"realm":%q,"username":"admin","nonce":%q,"cnonce":%q,"response":%q,"algorithm":"SHA-256","nc":%d}`,
		testDeviceID, nonce, cnonce, frameResponse(testHA1(), nonce, fmt.Sprint(nc), cnonce), nc)
}

// digestHeader is an Authorization header as curl sends it.
func digestHeader(password, nonce, method, uri, nc, cnonce string) string {
	ha1 := sha("admin:" + testDeviceID + ":" + password)
	resp := sha(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + sha(method+":"+uri))
	return fmt.Sprintf(`Digest username="admin", realm="%s", nonce="%s", uri="%s", cnonce="%s", nc=%s, qop=auth, response="%s", algorithm=SHA-256`,
		testDeviceID, nonce, uri, cnonce, nc, resp)
}

var (
	challengeHeaderRE = regexp.MustCompile(`^Digest qop="auth", realm="` + testDeviceID + `", nonce="([A-Za-z0-9_-]{43})", algorithm=SHA-256(, stale=true)?$`)
	challengeMsgRE    = regexp.MustCompile(`^\{"auth_type":"digest","nonce":"([A-Za-z0-9_-]{43})","nc":1,"realm":"` + testDeviceID + `","algorithm":"SHA-256"(,"stale":true)?\}$`)
)

// newAuthDevice is an inbound device with the test password set.
func newAuthDevice(t *testing.T, opts ...shellyws.Option) *inboundDevice {
	t.Helper()
	d := newInboundDevice(t, nil, opts...)
	require.NoError(t, d.c.SetAuth(shellyws.PasswordAuth(testDeviceID, testPassword)))
	return d
}

// challenge401 checks an HTTP 401 and returns its nonce and staleness; the
// header and the body's JSON-string message carry the same nonce.
func challenge401(t *testing.T, res httpResult) (nonce string, stale bool) {
	t.Helper()
	require.Equal(t, http.StatusUnauthorized, res.status, res.body)
	m := challengeHeaderRE.FindStringSubmatch(res.header.Get("WWW-Authenticate"))
	require.NotNil(t, m, "WWW-Authenticate %q", res.header.Get("WWW-Authenticate"))
	nonce, stale = m[1], m[2] != ""
	assert.Contains(t, res.body, `"code":401`)
	assert.Contains(t, res.body, nonce)
	return nonce, stale
}

// frameChallenge checks a frame's 401 error and returns its nonce.
func frameChallenge(t *testing.T, e *shellyws.Error) (nonce string, stale bool) {
	t.Helper()
	require.NotNil(t, e)
	require.Equal(t, 401, e.Code)
	m := challengeMsgRE.FindStringSubmatch(e.Message)
	require.NotNil(t, m, "401 message %q", e.Message)
	return m[1], m[2] != ""
}

func (d *inboundDevice) getAuth(t *testing.T, path, authz string) httpResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, d.srv.URL+path, nil)
	require.NoError(t, err)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return d.do(t, req)
}

func TestAuthHTTPDigest(t *testing.T) {
	d := newAuthDevice(t)

	res := d.get(t, "/rpc/Ws.GetConfig", "")
	nonce, stale := challenge401(t, res)
	assert.False(t, stale)
	// The body's message is the frame challenge, a JSON string.
	var body shellyws.Error
	require.NoError(t, json.Unmarshal([]byte(res.body), &body))
	assert.Equal(t, `{"auth_type":"digest","nonce":"`+nonce+`","nc":1,"realm":"`+testDeviceID+`","algorithm":"SHA-256"}`, body.Message)

	uri := "/rpc/Ws.GetConfig"
	ok := d.getAuth(t, uri, digestHeader(testPassword, nonce, "GET", uri, "00000001", "abc"))
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	assert.JSONEq(t, `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`, ok.body)

	// The nonce is reused with a higher nc, on another URI and with a query.
	uri2 := "/rpc/Test.Echo?x=1"
	ok = d.getAuth(t, uri2, digestHeader(testPassword, nonce, "GET", uri2, "00000002", "abd"))
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	assert.JSONEq(t, `{"x":1}`, ok.body)

	// A replayed or lower nc is refused, with a fresh nonce.
	for _, nc := range []string{"00000002", "00000001"} {
		res = d.getAuth(t, uri, digestHeader(testPassword, nonce, "GET", uri, nc, "abe"))
		fresh, _ := challenge401(t, res)
		assert.NotEqual(t, nonce, fresh)
	}
	// A wrong password is refused.
	res = d.getAuth(t, uri, digestHeader("wrong", nonce, "GET", uri, "00000009", "abf"))
	challenge401(t, res)
	// POST /rpc/<method> is HTTP digest too, with its own method in HA2.
	req, err := http.NewRequest(http.MethodPost, d.srv.URL+"/rpc/Test.Echo", strings.NewReader(`{"a":1}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", digestHeader(testPassword, nonce, "POST", "/rpc/Test.Echo", "0000000a", "ac0"))
	ok = d.do(t, req)
	require.Equal(t, http.StatusOK, ok.status, ok.body)
	assert.JSONEq(t, `{"a":1}`, ok.body)

	// Every challenge carries a new nonce.
	seen := map[string]bool{}
	for range 5 {
		n, _ := challenge401(t, d.get(t, "/rpc/Ws.GetStatus", ""))
		assert.False(t, seen[n], "nonce issued twice")
		seen[n] = true
	}
}

func TestAuthExemptRequests(t *testing.T) {
	clock := newFakeClock()
	d := newAuthDevice(t, shellyws.WithClock(clock.Now))
	check := func() {
		t.Helper()
		for _, path := range []string{"/shelly", "/rpc/Shelly.GetDeviceInfo", "/rpc/shelly.getdeviceinfo"} {
			res := d.get(t, path, "")
			require.Equal(t, http.StatusOK, res.status, path)
			assert.JSONEq(t, deviceInfo, res.body)
		}
		res := d.post(t, "/rpc", `{"id":1,"method":"Shelly.GetDeviceInfo"}`)
		require.Equal(t, http.StatusOK, res.status)
		ctx := testCtx(t)
		conn := d.dial(t, nil)
		resp, _ := call(t, ctx, conn, `{"id":2,"src":"c","method":"Shelly.GetDeviceInfo"}`)
		assert.Nil(t, resp.Error)
		assert.JSONEq(t, deviceInfo, string(resp.Result))
	}
	check()
	// Even while locked out.
	lockOut(t, d)
	require.Equal(t, http.StatusTooManyRequests, d.get(t, "/rpc/Ws.GetConfig", "").status)
	check()
}

// lockOut fails maxLiveNonces times over a websocket; the last is a 429.
func lockOut(t *testing.T, d *inboundDevice) {
	t.Helper()
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	nonce := "made-up"
	for i := 1; i <= maxLiveNonces; i++ {
		bad := fixLen(strings.Replace(authObject(nonce, 1, "c"), `"response":"`, `"response":"0`, 1))
		resp, _ := call(t, ctx, conn, `{"id":`+fmt.Sprint(i)+`,"src":"c","method":"Ws.GetStatus","auth":`+bad+`}`)
		require.NotNil(t, resp.Error, "attempt %d", i)
		if i < maxLiveNonces {
			nonce, _ = frameChallenge(t, resp.Error)
			continue
		}
		assert.Equal(t, 429, resp.Error.Code)
		assert.Equal(t, "Too many failed authentication attempts", resp.Error.Message)
	}
}

// fixLen cuts the response of an auth object made wrong by a prefix back
// to 64 hex digits, so it is well-formed but wrong.
func fixLen(obj string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(obj), &m); err != nil {
		panic(err)
	}
	m["response"] = m["response"].(string)[:64]
	out, _ := json.Marshal(m)
	return string(out)
}

func TestAuthWebsocketFrames(t *testing.T) {
	d := newAuthDevice(t)
	ctx := testCtx(t)
	conn := d.dial(t, nil)

	resp, _ := call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetConfig"}`)
	assert.Nil(t, resp.Result)
	nonce, stale := frameChallenge(t, resp.Error)
	assert.False(t, stale)
	// The exact frame on the wire.
	assert.Equal(t, `{"id":1,"src":"`+testDeviceID+`","dst":"c","error":{"code":401,"message":"{\"auth_type\":\"digest\",\"nonce\":\"`+nonce+`\",\"nc\":1,\"realm\":\"`+testDeviceID+`\",\"algorithm\":\"SHA-256\"}"}}`, resp.raw)

	for nc := 1; nc <= 3; nc++ {
		resp, _ = call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetConfig","auth":%s}`, 10+nc, authObject(nonce, nc, fmt.Sprint("cn", nc))))
		require.Nil(t, resp.Error, "nc %d", nc)
		assert.JSONEq(t, `{"enable":false,"server":null,"ssl_ca":"ca.pem"}`, string(resp.Result))
	}
	// Replays and lower counts are refused, each with a fresh nonce.
	for _, nc := range []int{3, 2, 1} {
		resp, _ = call(t, ctx, conn, fmt.Sprintf(`{"id":20,"src":"c","method":"Ws.GetConfig","auth":%s}`, authObject(nonce, nc, "x")))
		fresh, _ := frameChallenge(t, resp.Error)
		assert.NotEqual(t, nonce, fresh)
	}

	// aioshelly's shape: no nc (it hashes 1), an integer cnonce.
	resp, _ = call(t, ctx, conn, `{"id":30,"src":"c","method":"Ws.GetStatus"}`)
	n2, _ := frameChallenge(t, resp.Error)
	aio := fmt.Sprintf(`{"realm":%q,"username":"admin","nonce":%q,"cnonce":1716556501,"response":%q,"algorithm":"SHA-256"}`,
		testDeviceID, n2, frameResponse(testHA1(), n2, "1", "1716556501"))
	resp, _ = call(t, ctx, conn, `{"id":31,"src":"c","method":"Ws.GetStatus","auth":`+aio+`}`)
	require.Nil(t, resp.Error)
	assert.JSONEq(t, `{"connected":false}`, string(resp.Result))
	// Sending the same object again is a replay of nc 1.
	resp, _ = call(t, ctx, conn, `{"id":32,"src":"c","method":"Ws.GetStatus","auth":`+aio+`}`)
	frameChallenge(t, resp.Error)

	// The nc enters the hash in plain decimal: 00000001 in the hash fails.
	resp, _ = call(t, ctx, conn, `{"id":33,"src":"c","method":"Ws.GetStatus"}`)
	n3, _ := frameChallenge(t, resp.Error)
	hexNC := fmt.Sprintf(`{"realm":%q,"username":"admin","nonce":%q,"cnonce":"z","response":%q,"algorithm":"SHA-256","nc":1}`,
		testDeviceID, n3, frameResponse(testHA1(), n3, "00000001", "z"))
	resp, _ = call(t, ctx, conn, `{"id":34,"src":"c","method":"Ws.GetStatus","auth":`+hexNC+`}`)
	frameChallenge(t, resp.Error)
}

func TestAuthUnauthenticatedNotificationNotExecuted(t *testing.T) {
	d := newAuthDevice(t)
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	// A request without id and without auth is neither run nor answered.
	writeFrame(t, ctx, conn, `{"src":"c","method":"Switch.Toggle","params":{"id":0}}`)
	resp, _ := call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	resp, _ = call(t, ctx, conn, `{"id":2,"src":"c","method":"Switch.Toggle","params":{"id":0},"auth":`+authObject(nonce, 1, "q")+`}`)
	require.Nil(t, resp.Error)
	assert.JSONEq(t, `{"was_on":false}`, string(resp.Result), "the unauthenticated toggle ran")
}

func TestAuthPostFrame(t *testing.T) {
	d := newAuthDevice(t)
	res := d.post(t, "/rpc", `{"id":7,"src":"me","method":"Ws.GetConfig"}`)
	nonce, _ := challenge401(t, res)
	var fr wsFrame
	require.NoError(t, json.Unmarshal([]byte(res.body), &fr))
	assert.Equal(t, "me", fr.Dst)
	gotNonce, _ := frameChallenge(t, fr.Error)
	assert.Equal(t, nonce, gotNonce, "header and body carry one nonce")

	// With the auth object in the body.
	res = d.post(t, "/rpc", `{"id":8,"src":"me","method":"Ws.GetConfig","auth":`+authObject(nonce, 1, "p")+`}`)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.JSONEq(t, `{"id":8,"src":"`+testDeviceID+`","dst":"me","result":{"enable":false,"server":null,"ssl_ca":"ca.pem"}}`, res.body)

	// With HTTP digest instead (curl --digest -d ... /rpc).
	req, err := http.NewRequest(http.MethodPost, d.srv.URL+"/rpc", strings.NewReader(`{"id":9,"method":"Ws.GetStatus"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", digestHeader(testPassword, nonce, "POST", "/rpc", "00000002", "h"))
	res = d.do(t, req)
	require.Equal(t, http.StatusOK, res.status, res.body)
	assert.JSONEq(t, `{"id":9,"src":"`+testDeviceID+`","result":{"connected":false}}`, res.body)

	// A wrong auth object and no header: a 401.
	res = d.post(t, "/rpc", `{"id":10,"method":"Ws.GetConfig","auth":`+authObject(nonce, 1, "p")+`}`)
	challenge401(t, res)
}

func TestAuthStaleNonce(t *testing.T) {
	clock := newFakeClock()
	d := newAuthDevice(t, shellyws.WithClock(clock.Now))
	ctx := testCtx(t)
	conn := d.dial(t, nil)

	resp, _ := call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	resp, _ = call(t, ctx, conn, `{"id":2,"src":"c","method":"Ws.GetStatus","auth":`+authObject(nonce, 1, "a")+`}`)
	require.Nil(t, resp.Error)

	clock.Advance(59 * time.Minute)
	resp, _ = call(t, ctx, conn, `{"id":3,"src":"c","method":"Ws.GetStatus","auth":`+authObject(nonce, 2, "a")+`}`)
	require.Nil(t, resp.Error, "a nonce lives an hour")

	clock.Advance(time.Minute)
	resp, _ = call(t, ctx, conn, `{"id":4,"src":"c","method":"Ws.GetStatus","auth":`+authObject(nonce, 3, "a")+`}`)
	fresh, stale := frameChallenge(t, resp.Error)
	assert.True(t, stale, "an expired nonce with a correct response is stale")
	assert.NotEqual(t, nonce, fresh)
	// Still refused, and still stale, once it left the table.
	resp, _ = call(t, ctx, conn, `{"id":5,"src":"c","method":"Ws.GetStatus","auth":`+authObject(nonce, 4, "a")+`}`)
	_, stale = frameChallenge(t, resp.Error)
	assert.True(t, stale)
	// A wrong response on an expired nonce is not stale: the password is wrong.
	wrong := fixLen(strings.Replace(authObject(nonce, 5, "a"), `"response":"`, `"response":"f`, 1))
	resp, _ = call(t, ctx, conn, `{"id":6,"src":"c","method":"Ws.GetStatus","auth":`+wrong+`}`)
	_, stale = frameChallenge(t, resp.Error)
	assert.False(t, stale)
	// The fresh nonce works.
	resp, _ = call(t, ctx, conn, `{"id":7,"src":"c","method":"Ws.GetStatus","auth":`+authObject(fresh, 1, "a")+`}`)
	require.Nil(t, resp.Error)

	// HTTP says stale=true in the header.
	n, _ := challenge401(t, d.get(t, "/rpc/Ws.GetStatus", ""))
	clock.Advance(time.Hour)
	res := d.getAuth(t, "/rpc/Ws.GetStatus", digestHeader(testPassword, n, "GET", "/rpc/Ws.GetStatus", "00000001", "s"))
	_, stale = challenge401(t, res)
	assert.True(t, stale)
	assert.True(t, strings.HasSuffix(res.header.Get("WWW-Authenticate"), ", algorithm=SHA-256, stale=true"))
}

func TestAuthNonceTableBound(t *testing.T) {
	d := newAuthDevice(t)
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	resp, _ := call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetStatus"}`)
	first, _ := frameChallenge(t, resp.Error)
	// Bare requests are challenges, not failures: any number of them never
	// locks the device out, and the table keeps maxLiveNonces.
	var last []string
	for i := range 3 * maxLiveNonces {
		resp, _ = call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus"}`, 100+i))
		n, _ := frameChallenge(t, resp.Error)
		last = append(last, n)
	}
	// The first nonce was pushed out: refused, as stale since it is ours.
	resp, _ = call(t, ctx, conn, `{"id":2,"src":"c","method":"Ws.GetStatus","auth":`+authObject(first, 1, "a")+`}`)
	_, stale := frameChallenge(t, resp.Error)
	assert.True(t, stale)
	// The newest ones are live.
	for _, n := range last[len(last)-8:] {
		resp, _ = call(t, ctx, conn, `{"id":3,"src":"c","method":"Ws.GetStatus","auth":`+authObject(n, 1, "a")+`}`)
		require.Nil(t, resp.Error)
	}
}

func TestAuthLockout(t *testing.T) {
	clock := newFakeClock()
	d := newAuthDevice(t, shellyws.WithClock(clock.Now))
	srv := shellywstest.NewServer(t)
	_, err := d.c.SetConfig(enabledConfig(srv.URL()))
	require.NoError(t, err)
	d.c.Restart()
	runDevice(t, d.c)
	ctx := testCtx(t)
	out := acceptConnected(t, ctx, srv)

	lockOut(t, d)
	// Every request now gets 429, valid credentials included, on every channel.
	res := d.get(t, "/rpc/Ws.GetConfig", "")
	require.Equal(t, http.StatusTooManyRequests, res.status)
	assert.Equal(t, "2", res.header.Get("Retry-After"))
	assert.JSONEq(t, `{"code":429,"message":"Too many failed authentication attempts"}`, res.body)
	res = d.post(t, "/rpc", `{"id":1,"method":"Ws.GetConfig"}`)
	require.Equal(t, http.StatusTooManyRequests, res.status)
	assert.JSONEq(t, `{"id":1,"src":"`+testDeviceID+`","error":{"code":429,"message":"Too many failed authentication attempts"}}`, res.body)

	// The outbound channel is not locked out.
	var st shellyws.Status
	require.NoError(t, out.Call(ctx, "Ws.GetStatus", nil, &st))
	assert.True(t, st.Connected)

	clock.Advance(lockoutDuration - time.Millisecond)
	require.Equal(t, http.StatusTooManyRequests, d.get(t, "/rpc/Ws.GetConfig", "").status)
	clock.Advance(time.Millisecond)
	// After the lockout the failures are forgotten: a wrong attempt is a 401
	// again, and a right one succeeds.
	nonce, _ := challenge401(t, d.get(t, "/rpc/Ws.GetConfig", ""))
	challenge401(t, d.getAuth(t, "/rpc/Ws.GetConfig", digestHeader("nope", nonce, "GET", "/rpc/Ws.GetConfig", "00000001", "x")))
	ok := d.getAuth(t, "/rpc/Ws.GetConfig", digestHeader(testPassword, nonce, "GET", "/rpc/Ws.GetConfig", "00000002", "x"))
	assert.Equal(t, http.StatusOK, ok.status)
}

func TestAuthFailuresRecoveredBySuccess(t *testing.T) {
	// A client that replays its nonce (aioshelly sends the same auth on every
	// call) fails once per call and succeeds right after: that never fills
	// the table.
	d := newAuthDevice(t)
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	auth := authObject("none-yet", 1, "c")
	for i := range 3 * maxLiveNonces {
		resp, _ := call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus","auth":%s}`, 2*i, auth))
		nonce, _ := frameChallenge(t, resp.Error)
		auth = authObject(nonce, 1, "c")
		resp, _ = call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus","auth":%s}`, 2*i+1, auth))
		require.Nil(t, resp.Error, "call %d", i)
	}
}

func TestAuthOutboundNeverChallenged(t *testing.T) {
	srv := shellywstest.NewServer(t)
	mux := shellyws.NewMux()
	c := startDevice(t, enabledConfig(srv.URL()), shellyws.WithDispatcher(mux),
		shellyws.WithAuthStore(shellyws.NewMemoryAuthStore(shellyws.PasswordAuth(testDeviceID, testPassword))))
	c.Register(mux)
	ctx := testCtx(t)
	out := acceptConnected(t, ctx, srv)
	require.True(t, c.Auth().Enable)

	var cfg shellyws.Config
	require.NoError(t, out.Call(ctx, "Ws.GetConfig", nil, &cfg))
	// Fleet Manager pushes Shelly.SetAuth over the outbound channel.
	newHA1 := sha("admin:" + testDeviceID + ":other")
	var res json.RawMessage
	require.NoError(t, out.Call(ctx, "Shelly.SetAuth", map[string]any{"user": "admin", "realm": testDeviceID, "ha1": newHA1}, &res))
	assert.Equal(t, "null", string(res))
	assert.Equal(t, newHA1, c.Auth().HA1)
	require.NoError(t, out.Call(ctx, "Shelly.SetAuth", map[string]any{"user": "admin", "realm": testDeviceID, "ha1": nil}, &res))
	assert.False(t, c.Auth().Enable)
	assert.Equal(t, shellyws.AuthInfo{}, c.AuthInfo())
}

func TestSetAuthRPC(t *testing.T) {
	d := newInboundDevice(t, nil)
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	ha1 := testHA1()
	bad := []string{
		`{"user":"root","realm":"` + testDeviceID + `","ha1":"` + ha1 + `"}`,
		`{"realm":"` + testDeviceID + `","ha1":"` + ha1 + `"}`,
		`{"user":"admin","realm":"shellyplus1pm-000000000000","ha1":"` + ha1 + `"}`,
		`{"user":"admin","ha1":"` + ha1 + `"}`,
		`{"user":"admin","realm":"` + testDeviceID + `"}`,
		`{"user":"admin","realm":"` + testDeviceID + `","ha1":"` + ha1[:63] + `"}`,
		`{"user":"admin","realm":"` + testDeviceID + `","ha1":"` + ha1[:63] + `g"}`,
		`{"user":"admin","realm":"` + testDeviceID + `","ha1":7}`,
		`{"user":1,"realm":"` + testDeviceID + `","ha1":null}`,
		`[]`, `"x"`,
	}
	for i, p := range bad {
		resp, _ := call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Shelly.SetAuth","params":%s}`, i, p))
		require.NotNil(t, resp.Error, p)
		assert.Equal(t, shellyws.CodeInvalidArgument, resp.Error.Code, p)
		assert.NotContains(t, resp.Error.Message, ha1[:16], "no ha1 in an error")
		assert.False(t, d.c.Auth().Enable)
	}
	resp, _ := call(t, ctx, conn, `{"id":"a","src":"c","method":"shelly.setauth","params":{"user":"admin","realm":"`+testDeviceID+`","ha1":"`+strings.ToUpper(ha1)+`"}}`)
	require.Nil(t, resp.Error)
	assert.Equal(t, "null", string(resp.Result))
	assert.Equal(t, shellyws.AuthConfig{Enable: true, Realm: testDeviceID, HA1: ha1}, d.c.Auth())
	realm := testDeviceID
	assert.Equal(t, shellyws.AuthInfo{Enabled: true, Domain: &realm}, d.c.AuthInfo())
	info, _ := json.Marshal(d.c.AuthInfo())
	assert.JSONEq(t, `{"auth_en":true,"auth_domain":"`+testDeviceID+`"}`, string(info))

	// Now SetAuth itself needs auth on the inbound channels.
	disable := `"params":{"user":"admin","realm":"` + testDeviceID + `","ha1":null}`
	resp, _ = call(t, ctx, conn, `{"id":1,"src":"c","method":"Shelly.SetAuth",`+disable+`}`)
	nonce, _ := frameChallenge(t, resp.Error)
	require.True(t, d.c.Auth().Enable)
	resp, _ = call(t, ctx, conn, `{"id":2,"src":"c","method":"Shelly.SetAuth",`+disable+`,"auth":`+authObject(nonce, 1, "k")+`}`)
	require.Nil(t, resp.Error)
	assert.False(t, d.c.Auth().Enable)
	// And off means off: no credentials needed.
	resp, _ = call(t, ctx, conn, `{"id":3,"src":"c","method":"Ws.GetStatus"}`)
	assert.Nil(t, resp.Error)
}

func TestAuthDefaultDispatcherHasSetAuth(t *testing.T) {
	c, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	d := &inboundDevice{c: c}
	d.h = shellyws.NewHandler(c)
	d.srv = newLoopbackServer(t, d.h)
	res := d.post(t, "/rpc", `{"id":1,"method":"Shelly.SetAuth","params":{"user":"admin","realm":"`+testDeviceID+`","ha1":"`+testHA1()+`"}}`)
	assert.Equal(t, `{"id":1,"src":"`+testDeviceID+`","result":null}`, res.body)
	assert.True(t, c.Auth().Enable)
	challenge401(t, d.get(t, "/rpc/Shelly.ListMethods", ""))
}

// newLoopbackServer serves h on 127.0.0.1 until the test ends.
func newLoopbackServer(t *testing.T, h *shellyws.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	return srv
}

func TestAuthFileStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, testDeviceID+".auth.json")
	store := shellyws.NewFileAuthStore(path)
	a, err := store.Load()
	require.NoError(t, err)
	assert.False(t, a.Enable, "no file: off")

	c, err := shellyws.New(testDeviceID, shellyws.WithAuthStore(store))
	require.NoError(t, err)
	require.NoError(t, c.SetAuth(shellyws.PasswordAuth(testDeviceID, testPassword)))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), testPassword)
	assert.JSONEq(t, `{"enable":true,"realm":"`+testDeviceID+`","ha1":"`+testHA1()+`"}`, string(data))

	// A restart: a new component and handler on the same file still
	// require the password, and accept it.
	c2, err := shellyws.New(testDeviceID, shellyws.WithAuthStore(shellyws.NewFileAuthStore(path)))
	require.NoError(t, err)
	require.True(t, c2.Auth().Enable)
	h := shellyws.NewHandler(c2)
	d := &inboundDevice{c: c2, h: h}
	d.srv = newLoopbackServer(t, h)
	nonce, _ := challenge401(t, d.get(t, "/rpc/Ws.GetConfig", ""))
	ok := d.getAuth(t, "/rpc/Ws.GetConfig", digestHeader(testPassword, nonce, "GET", "/rpc/Ws.GetConfig", "00000001", "r"))
	assert.Equal(t, http.StatusOK, ok.status)

	// Turned off, it stays off across a restart, and the file holds no ha1.
	require.NoError(t, c2.SetAuth(shellyws.AuthConfig{}))
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `{"enable":false}`, string(data))
	c3, err := shellyws.New(testDeviceID, shellyws.WithAuthStore(shellyws.NewFileAuthStore(path)))
	require.NoError(t, err)
	assert.False(t, c3.Auth().Enable)
}

func TestAuthFileStoreCorrupt(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":    `{"enable":tru`,
		"not object":  `[1]`,
		"no enable":   `{"realm":"x"}`,
		"enable type": `{"enable":"yes","realm":"` + testDeviceID + `","ha1":"` + testHA1() + `"}`,
		"bad ha1":     `{"enable":true,"realm":"` + testDeviceID + `","ha1":"abc"}`,
		"no ha1":      `{"enable":true,"realm":"` + testDeviceID + `"}`,
		"realm type":  `{"enable":true,"realm":5,"ha1":"` + testHA1() + `"}`,
		"other realm": `{"enable":true,"realm":"shellyplus1pm-000000000000","ha1":"` + testHA1() + `"}`,
		"empty":       ``,
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		_, err := shellyws.New(testDeviceID, shellyws.WithAuthStore(shellyws.NewFileAuthStore(path)))
		require.Error(t, err, name)
		assert.ErrorIs(t, err, shellyws.ErrBadAuthFile, name)
		assert.NotContains(t, err.Error(), testHA1(), name)
		after, _ := os.ReadFile(path)
		assert.Equal(t, content, string(after), "the file is left as it was")
	}
}

func TestAuthConfigNeverPrintsHA1(t *testing.T) {
	a := shellyws.PasswordAuth(testDeviceID, testPassword)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "auth", a)
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), buf.String()} {
		assert.NotContains(t, s, a.HA1)
	}
	assert.Equal(t, sha("admin:"+testDeviceID+":"+testPassword), shellyws.ComputeHA1(testDeviceID, testPassword))
}

func TestAuthBadHTTPHeaders(t *testing.T) {
	d := newAuthDevice(t)
	nonce, _ := challenge401(t, d.get(t, "/rpc/Ws.GetConfig", ""))
	uri := "/rpc/Ws.GetConfig"
	good := digestHeader(testPassword, nonce, "GET", uri, "00000001", "c")
	tests := []struct {
		name, header string
		status       int
	}{
		{"basic scheme", "Basic YWRtaW46cGFzcw==", 401},
		{"bearer", "Bearer x", 401},
		{"scheme only", "Digest", 400},
		{"name only", "Digest username", 400},
		{"unterminated", `Digest username="admin`, 400},
		{"no comma", `Digest username="admin" realm="x"`, 400},
		{"duplicate", good + `, nonce="x"`, 400},
		{"missing response", strings.Replace(good, "response=", "resp=", 1), 400},
		{"non-hex response", regexp.MustCompile(`response="[0-9a-f]+"`).ReplaceAllString(good, `response="`+strings.Repeat("z", 64)+`"`), 400},
		{"short response", regexp.MustCompile(`response="[0-9a-f]+"`).ReplaceAllString(good, `response="abc"`), 400},
		{"nc not hex", strings.Replace(good, "nc=00000001", "nc=zz", 1), 400},
		{"nc too long", strings.Replace(good, "nc=00000001", "nc=000000001", 1), 400},
		{"uri mismatch", strings.Replace(good, `uri="/rpc/Ws.GetConfig"`, `uri="/rpc/Ws.SetConfig"`, 1), 400},
		{"md5", strings.Replace(good, "algorithm=SHA-256", "algorithm=MD5", 1), 401},
		{"no algorithm", strings.Replace(good, ", algorithm=SHA-256", "", 1), 401},
		{"auth-int", strings.Replace(good, "qop=auth", "qop=auth-int", 1), 401},
		{"huge", good + `, x="` + strings.Repeat("a", 5000) + `"`, 400},
		{"huge nonce", strings.Replace(good, nonce, strings.Repeat("n", 300), 1), 400},
		{"wrong user", strings.Replace(good, `username="admin"`, `username="root"`, 1), 401},
	}
	for _, tt := range tests {
		res := d.getAuth(t, uri, tt.header)
		assert.Equal(t, tt.status, res.status, tt.name)
		if tt.status == 401 {
			challenge401(t, res)
		} else {
			assert.Contains(t, res.body, `"code":-103`, tt.name)
			assert.NotContains(t, res.body, nonce, tt.name)
		}
	}
	// The header, not broken, still works after all that.
	ok := d.getAuth(t, uri, good)
	assert.Equal(t, http.StatusOK, ok.status)
}

func TestAuthBadAuthObjects(t *testing.T) {
	d := newAuthDevice(t)
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	resp, _ := call(t, ctx, conn, `{"id":0,"src":"c","method":"Ws.GetStatus"}`)
	nonce, _ := frameChallenge(t, resp.Error)
	good := authObject(nonce, 1, "c")
	set := func(key, raw string) string {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(good), &m))
		if raw == "" {
			delete(m, key)
		} else {
			m[key] = json.RawMessage(raw)
		}
		out, _ := json.Marshal(m)
		return string(out)
	}
	objs := []string{
		`"x"`, `[]`, `1`, `true`, `{}`,
		// A string nc is hex digits of a value from 1 (a "1" is taken).
		set("nc", `"0x1"`), set("nc", `"00000000"`), set("nc", `"123456789"`), set("nc", `""`), set("nc", `0`), set("nc", `-1`), set("nc", `1.5`), set("nc", `1e0`),
		set("nc", `99999999999999999999`), set("nc", `4294967296`), set("nc", `{}`),
		set("response", `"`+strings.Repeat("g", 64)+`"`), set("response", `5`), set("response", ""),
		set("algorithm", `"MD5"`), set("algorithm", `7`),
		set("nonce", `"`+strings.Repeat("n", 5000)+`"`), set("nonce", `[1]`), set("nonce", ""),
		set("cnonce", `null`), set("username", `"root"`), set("username", `1`), set("realm", `"other"`),
	}
	for i, obj := range objs {
		resp, _ = call(t, ctx, conn, fmt.Sprintf(`{"id":%d,"src":"c","method":"Ws.GetStatus","auth":%s}`, i+1, obj))
		require.NotNil(t, resp.Error, obj)
		frameChallenge(t, resp.Error)
	}
	// The client and the device are both fine: the untouched object works.
	resp, _ = call(t, ctx, conn, `{"id":99,"src":"c","method":"Ws.GetStatus","auth":`+good+`}`)
	assert.Nil(t, resp.Error)
}

func TestAuthFloodFromManyClients(t *testing.T) {
	clock := newFakeClock()
	srv := shellywstest.NewServer(t)
	d := newAuthDevice(t, shellyws.WithClock(clock.Now))
	_, err := d.c.SetConfig(enabledConfig(srv.URL()))
	require.NoError(t, err)
	d.c.Restart()
	runDevice(t, d.c)
	ctx := testCtx(t)
	out := acceptConnected(t, ctx, srv)

	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := d.srv.Client()
			for i := range 40 {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.URL+"/rpc/Ws.GetConfig", nil)
				req.Header.Set("Authorization", digestHeader("guess", fmt.Sprint("n", w, i), "GET", "/rpc/Ws.GetConfig", "00000001", "c"))
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 401 && resp.StatusCode != 429 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	// Locked out now, the outbound channel still answers.
	require.Equal(t, http.StatusTooManyRequests, d.get(t, "/rpc/Ws.GetConfig", "").status)
	var st shellyws.Status
	require.NoError(t, out.Call(ctx, "Ws.GetStatus", nil, &st))
	assert.True(t, st.Connected)
}

func TestAuthSecretsNeverLogged(t *testing.T) {
	var logs testkit.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := newAuthDevice(t, shellyws.WithLogger(logger))
	ctx := testCtx(t)
	nonce, _ := challenge401(t, d.get(t, "/rpc/Ws.GetConfig", ""))
	good := digestHeader(testPassword, nonce, "GET", "/rpc/Ws.GetConfig", "00000001", "c")
	d.getAuth(t, "/rpc/Ws.GetConfig", good)
	d.getAuth(t, "/rpc/Ws.GetConfig", good) // a replay
	d.getAuth(t, "/rpc/Ws.GetConfig", `Digest username="admin", broken`)
	conn := d.dial(t, nil)
	obj := authObject(nonce, 5, "c")
	call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetStatus","auth":`+obj+`}`)
	call(t, ctx, conn, `{"id":2,"src":"c","method":"Ws.GetStatus","auth":`+obj+`}`)
	d.h.Close()
	out := logs.String()
	require.NotEmpty(t, out)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(obj), &m))
	for _, secret := range []string{testPassword, testHA1(), m["response"].(string), regexp.MustCompile(`response="([0-9a-f]+)"`).FindStringSubmatch(good)[1], "Digest username"} {
		assert.NotContains(t, out, secret)
	}
}

func TestAuthDigestTransport(t *testing.T) {
	d := newAuthDevice(t)
	client := &http.Client{Transport: &shellywstest.DigestTransport{Password: testPassword, Base: d.srv.Client().Transport}}
	for range 3 {
		resp, err := client.Get(d.srv.URL + "/rpc/Ws.GetConfig")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode)
	}
	resp, err := client.Post(d.srv.URL+"/rpc", "application/json", strings.NewReader(`{"id":1,"method":"Test.Echo","params":{"k":2}}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	wrong := &http.Client{Transport: &shellywstest.DigestTransport{Password: "nope", Base: d.srv.Client().Transport}}
	resp, err = wrong.Get(d.srv.URL + "/rpc/Ws.GetConfig")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// The frame helper answers a websocket challenge.
	ctx := testCtx(t)
	conn := d.dial(t, nil)
	r, _ := call(t, ctx, conn, `{"id":1,"src":"c","method":"Ws.GetStatus"}`)
	require.NotNil(t, r.Error)
	ch, err := shellywstest.ParseChallenge(r.Error.Message)
	require.NoError(t, err)
	for nc := uint64(1); nc <= 2; nc++ {
		auth, _ := json.Marshal(shellywstest.FrameAuth(ch, testPassword, nc))
		r, _ = call(t, ctx, conn, `{"id":2,"src":"c","method":"Ws.GetStatus","auth":`+string(auth)+`}`)
		assert.Nil(t, r.Error)
	}
}

func TestAuthWithCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	d := newAuthDevice(t)
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(testCtx(t), curl, append([]string{"-sS", "--noproxy", "*", "-o", "-", "-w", " %{http_code}"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("--digest", "-u", "admin:"+testPassword, d.srv.URL+"/rpc/Ws.GetConfig")
	require.NoError(t, err, out)
	assert.Equal(t, `{"enable":false,"server":null,"ssl_ca":"ca.pem"} 200`, out)
	out, err = run("--digest", "-u", "admin:"+testPassword, "-d", `{"id":1,"method":"Ws.GetStatus"}`, d.srv.URL+"/rpc")
	require.NoError(t, err, out)
	assert.Equal(t, `{"id":1,"src":"`+testDeviceID+`","result":{"connected":false}} 200`, out)
	out, err = run("--digest", "-u", "admin:"+testPassword, d.srv.URL+"/rpc/Test.Echo?a=1&b=%22x%22")
	require.NoError(t, err, out)
	assert.Equal(t, `{"a":1,"b":"x"} 200`, out)
	out, err = run("--digest", "-u", "admin:wrong", d.srv.URL+"/rpc/Ws.GetConfig")
	require.NoError(t, err, out)
	assert.True(t, strings.HasSuffix(out, " 401"), out)
}
