package shellyws_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shellyws/shellyws"
)

// dispatch sends method with params to d and returns the result as JSON.
func dispatch(t *testing.T, d shellyws.Dispatcher, method string, params string) (string, error) {
	t.Helper()
	req := &shellyws.Request{ID: json.RawMessage(`1`), Src: "srv", Method: method}
	if params != "" {
		req.Params = json.RawMessage(params)
	}
	res, err := d.Dispatch(context.Background(), req)
	if err != nil {
		return "", err
	}
	b, mErr := json.Marshal(res)
	require.NoError(t, mErr)
	return string(b), nil
}

// requireRPCError checks that err is, or wraps, an *Error with code.
func requireRPCError(t *testing.T, err error, code int) *shellyws.Error {
	t.Helper()
	require.Error(t, err)
	var e *shellyws.Error
	require.True(t, errors.As(err, &e), "error %v (%T) is not an *Error", err, err)
	require.Equal(t, code, e.Code, "message: %s", e.Message)
	return e
}

// echoMethod returns a handler answering with the method name it was
// registered under, so a test sees which handler a request reached.
func echoMethod(name string) shellyws.DispatcherFunc {
	return func(_ context.Context, req *shellyws.Request) (any, error) {
		return map[string]string{"handler": name, "sent": req.Method}, nil
	}
}

func TestMuxRoutesCaseInsensitively(t *testing.T) {
	m := shellyws.NewMux()
	m.Handle("Ws.GetStatus", echoMethod("Ws.GetStatus"))
	m.Handle("Ws.GetConfig", echoMethod("Ws.GetConfig"))

	// Servers in the field send all of these spellings.
	for _, sent := range []string{"Ws.GetStatus", "ws.getstatus", "WS.GetStatus", "WS.GETSTATUS", "wS.gEtStAtUs"} {
		got, err := dispatch(t, m, sent, "")
		require.NoError(t, err, sent)
		assert.JSONEq(t, `{"handler":"Ws.GetStatus","sent":"`+sent+`"}`, got,
			"the handler sees the method as sent")
	}
	got, err := dispatch(t, m, "ws.getconfig", "")
	require.NoError(t, err)
	assert.JSONEq(t, `{"handler":"Ws.GetConfig","sent":"ws.getconfig"}`, got)
}

func TestMuxZeroValueIsReady(t *testing.T) {
	var m shellyws.Mux
	got, err := dispatch(t, &m, "Shelly.ListMethods", "")
	require.NoError(t, err)
	assert.JSONEq(t, `{"methods":["Shelly.ListMethods"]}`, got)

	m.HandleFunc("Sys.GetStatus", echoMethod("Sys.GetStatus"))
	got, err = dispatch(t, &m, "sys.GetStatus", "")
	require.NoError(t, err)
	assert.JSONEq(t, `{"handler":"Sys.GetStatus","sent":"sys.GetStatus"}`, got)
}

func TestMuxUnknownMethod(t *testing.T) {
	m := shellyws.NewMux()
	m.Handle("Ws.GetStatus", echoMethod("Ws.GetStatus"))

	tests := []struct{ method, message string }{
		{"Nope.Nothing", "No handler for Nope.Nothing"},
		{"nope.nothing", "No handler for nope.nothing"}, // echoed as sent
		{"Ws.GetStatu", "No handler for Ws.GetStatu"},
		{"Ws.GetStatusX", "No handler for Ws.GetStatusX"},
		{"Ws", "No handler for Ws"},
	}
	for _, tt := range tests {
		_, err := dispatch(t, m, tt.method, "")
		e := requireRPCError(t, err, 404)
		assert.Equal(t, shellyws.CodeNoHandler, e.Code)
		assert.Equal(t, tt.message, e.Message)
	}
}

func TestMuxListMethods(t *testing.T) {
	m := shellyws.NewMux()
	for _, name := range []string{"Ws.SetConfig", "Shelly.GetDeviceInfo", "Ws.GetStatus", "Sys.GetStatus", "Ws.GetConfig"} {
		m.Handle(name, echoMethod(name))
	}
	want := []string{"Shelly.GetDeviceInfo", "Shelly.ListMethods", "Sys.GetStatus", "Ws.GetConfig", "Ws.GetStatus", "Ws.SetConfig"}
	assert.Equal(t, want, m.Methods())

	wantJSON := `{"methods":["Shelly.GetDeviceInfo","Shelly.ListMethods","Sys.GetStatus","Ws.GetConfig","Ws.GetStatus","Ws.SetConfig"]}`
	for _, sent := range []string{"Shelly.ListMethods", "shelly.listmethods", "SHELLY.LISTMETHODS"} {
		got, err := dispatch(t, m, sent, "")
		require.NoError(t, err, sent)
		assert.Equal(t, wantJSON, got, sent)
	}

	// Registration after a listing shows up in the next one.
	m.Handle("Shelly.Reboot", echoMethod("Shelly.Reboot"))
	got, err := dispatch(t, m, "Shelly.ListMethods", "")
	require.NoError(t, err)
	assert.Equal(t, `{"methods":["Shelly.GetDeviceInfo","Shelly.ListMethods","Shelly.Reboot","Sys.GetStatus","Ws.GetConfig","Ws.GetStatus","Ws.SetConfig"]}`, got)
}

func TestMuxOwnListMethodsWins(t *testing.T) {
	// An embedder may serve Shelly.ListMethods itself (e.g. to merge several
	// routers); the built-in one must then step aside and not be listed twice.
	m := shellyws.NewMux()
	m.HandleFunc("shelly.listmethods", func(context.Context, *shellyws.Request) (any, error) {
		return "custom", nil
	})
	got, err := dispatch(t, m, "Shelly.ListMethods", "")
	require.NoError(t, err)
	assert.Equal(t, `"custom"`, got)
	assert.Equal(t, []string{"shelly.listmethods"}, m.Methods())
}

func TestMuxHandlePanics(t *testing.T) {
	noop := echoMethod("x")
	tests := []struct {
		name     string
		existing string
		method   string
		d        shellyws.Dispatcher
	}{
		{"same spelling twice", "Ws.GetStatus", "Ws.GetStatus", noop},
		{"other case", "Ws.GetStatus", "ws.getstatus", noop},
		{"upper case", "Ws.GetStatus", "WS.GETSTATUS", noop},
		{"non-ASCII other case", "Température.Get", "TEMPÉRATURE.GET", noop},
		{"empty method", "", "", noop},
		{"nil dispatcher", "", "Ws.GetStatus", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := shellyws.NewMux()
			if tt.existing != "" {
				m.Handle(tt.existing, noop)
			}
			assert.Panics(t, func() { m.Handle(tt.method, tt.d) })
		})
	}
}

func TestMuxLongAndNonASCIINames(t *testing.T) {
	// The router lower-cases short ASCII names in a stack buffer and falls
	// back to strings.ToLower otherwise; both paths must agree.
	long := func(n int) string {
		s := "Component." + strings.Repeat("LongMethodName", 10)
		return s[:n]
	}
	tests := []struct {
		name       string
		registered string
		sent       []string
	}{
		{"63 bytes", long(63), []string{long(63), strings.ToLower(long(63)), strings.ToUpper(long(63))}},
		{"64 bytes", long(64), []string{long(64), strings.ToLower(long(64)), strings.ToUpper(long(64))}},
		{"65 bytes", long(65), []string{long(65), strings.ToLower(long(65)), strings.ToUpper(long(65))}},
		{"100 bytes", long(100), []string{long(100), strings.ToLower(long(100)), strings.ToUpper(long(100))}},
		{"non-ASCII", "Température.GetStatus", []string{"Température.GetStatus", "température.getstatus", "TEMPÉRATURE.GETSTATUS"}},
		{"non-ASCII registered lower", "größe.get", []string{"Größe.Get", "GRÖßE.GET"}},
		{"non-ASCII first byte", "Ünit.Get", []string{"ünit.get", "ÜNIT.GET"}},
		{"long non-ASCII", "Ä" + long(80), []string{"ä" + strings.ToLower(long(80)), "Ä" + strings.ToUpper(long(80))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := shellyws.NewMux()
			m.Handle(tt.registered, echoMethod(tt.registered))
			m.Handle("Other.Method", echoMethod("Other.Method"))
			for _, sent := range tt.sent {
				got, err := dispatch(t, m, sent, "")
				require.NoError(t, err, "sent %q", sent)
				var res map[string]string
				require.NoError(t, json.Unmarshal([]byte(got), &res))
				assert.Equal(t, tt.registered, res["handler"], "sent %q", sent)
			}
			// A near miss of the same length must not match.
			miss := tt.registered[:len(tt.registered)-1] + "#"
			_, err := dispatch(t, m, miss, "")
			requireRPCError(t, err, 404)
		})
	}
}

func TestMuxPassesRequestContextAndErrors(t *testing.T) {
	type ctxKey struct{}
	wantErr := shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", 7)
	var gotReq *shellyws.Request
	m := shellyws.NewMux()
	m.HandleFunc("Switch.Set", func(ctx context.Context, req *shellyws.Request) (any, error) {
		gotReq = req
		assert.Equal(t, "v", ctx.Value(ctxKey{}))
		return nil, wantErr
	})
	req := &shellyws.Request{ID: json.RawMessage(`"a"`), Src: "s", Method: "switch.set", Params: json.RawMessage(`{"id":7}`)}
	ctx := context.WithValue(context.Background(), ctxKey{}, "v")

	res, err := m.Dispatch(ctx, req)

	assert.Nil(t, res)
	assert.Same(t, wantErr, err, "the handler's error reaches the caller unchanged")
	assert.Same(t, req, gotReq)
}

func TestMuxConcurrentHandleAndDispatch(t *testing.T) {
	// Run under -race: registration while requests are routed is allowed.
	const workers = 16
	m := shellyws.NewMux()
	m.Handle("Base.Get", echoMethod("Base.Get"))

	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			name := fmt.Sprintf("Worker%d.Get", i)
			m.Handle(name, echoMethod(name))
			for range 50 {
				got, err := dispatch(t, m, "base.get", "")
				assert.NoError(t, err)
				assert.JSONEq(t, `{"handler":"Base.Get","sent":"base.get"}`, got)
				_, err = dispatch(t, m, "Shelly.ListMethods", "")
				assert.NoError(t, err)
			}
			got, err := dispatch(t, m, strings.ToUpper(name), "")
			assert.NoError(t, err)
			assert.Contains(t, got, `"handler":"`+name+`"`)
		})
	}
	wg.Wait()

	methods := m.Methods()
	assert.Len(t, methods, workers+2) // + Base.Get and Shelly.ListMethods
	for i := range workers {
		assert.Contains(t, methods, fmt.Sprintf("Worker%d.Get", i))
	}
}

func TestDispatcherFunc(t *testing.T) {
	var calls int
	d := shellyws.DispatcherFunc(func(_ context.Context, req *shellyws.Request) (any, error) {
		calls++
		return req.Method + "!", nil
	})
	got, err := dispatch(t, d, "X.Y", "")
	require.NoError(t, err)
	assert.Equal(t, `"X.Y!"`, got)
	assert.Equal(t, 1, calls)
}

func TestAsError(t *testing.T) {
	rpcErr := &shellyws.Error{Code: shellyws.CodeFailedPrecondition, Message: "shutting down in 952 ms"}

	assert.Nil(t, shellyws.AsError(nil))

	assert.Same(t, rpcErr, shellyws.AsError(rpcErr))
	assert.Same(t, rpcErr, shellyws.AsError(fmt.Errorf("reboot: %w", rpcErr)), "a wrapped *Error keeps its code")
	assert.Same(t, rpcErr, shellyws.AsError(fmt.Errorf("a: %w", fmt.Errorf("b: %w", rpcErr))))
	assert.Same(t, rpcErr, shellyws.AsError(errors.Join(errors.New("other"), rpcErr)))

	tests := []struct {
		err  error
		want string
	}{
		{errors.New("disk on fire"), "disk on fire"},
		{fmt.Errorf("saving: %w", errors.New("no space")), "saving: no space"},
		{context.Canceled, "context canceled"},
	}
	for _, tt := range tests {
		got := shellyws.AsError(tt.err)
		require.NotNil(t, got)
		assert.Equal(t, shellyws.Error{Code: 500, Message: tt.want}, *got)
		assert.Equal(t, shellyws.CodeInternal, got.Code)
	}
}

func TestErrorf(t *testing.T) {
	e := shellyws.Errorf(shellyws.CodeNotFound, "Bad id=%d", 7)
	assert.Equal(t, shellyws.Error{Code: -105, Message: "Bad id=7"}, *e)
	assert.Equal(t, "rpc error -105: Bad id=7", e.Error())

	b, err := json.Marshal(e)
	require.NoError(t, err)
	assert.Equal(t, `{"code":-105,"message":"Bad id=7"}`, string(b))

	// A message with no verbs is kept as is.
	assert.Equal(t, "100% done", shellyws.Errorf(1, "100%% done").Message)
}

func TestErrorCodes(t *testing.T) {
	// The wire values are fixed by the firmware (protocol.md section 6).
	assert.Equal(t, -103, shellyws.CodeInvalidArgument)
	assert.Equal(t, -104, shellyws.CodeDeadlineExceeded)
	assert.Equal(t, -105, shellyws.CodeNotFound)
	assert.Equal(t, -108, shellyws.CodeResourceExhausted)
	assert.Equal(t, -109, shellyws.CodeFailedPrecondition)
	assert.Equal(t, -114, shellyws.CodeUnavailable)
	assert.Equal(t, 401, shellyws.CodeUnauthorized)
	assert.Equal(t, 404, shellyws.CodeNoHandler)
	assert.Equal(t, 500, shellyws.CodeInternal)
}

func TestRequestDecode(t *testing.T) {
	type rebootParams struct {
		DelayMS int `json:"delay_ms"`
	}

	t.Run("absent params leave v untouched", func(t *testing.T) {
		req := &shellyws.Request{Method: "Shelly.Reboot"}
		p := rebootParams{DelayMS: 42}
		require.NoError(t, req.Decode(&p))
		assert.Equal(t, 42, p.DelayMS)
	})

	t.Run("params decoded", func(t *testing.T) {
		req := &shellyws.Request{Method: "Shelly.Reboot", Params: json.RawMessage(`{"delay_ms":3500,"extra":true}`)}
		var p rebootParams
		require.NoError(t, req.Decode(&p))
		assert.Equal(t, 3500, p.DelayMS)
	})

	tests := []struct {
		name   string
		params string
		field  string // mentioned in the message, if any
	}{
		{"string for int", `{"delay_ms":"3500"}`, "delay_ms"},
		{"float for int", `{"delay_ms":1.5}`, "delay_ms"},
		{"object for int", `{"delay_ms":{}}`, "delay_ms"},
		{"array for object", `[1,2]`, ""},
		{"string for object", `"x"`, ""},
		{"number for object", `5`, ""},
		{"not JSON", `{"delay_ms":`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &shellyws.Request{Method: "Shelly.Reboot", Params: json.RawMessage(tt.params)}
			var p rebootParams
			e := requireRPCError(t, req.Decode(&p), -103)
			assert.NotEmpty(t, e.Message)
			if tt.field != "" {
				assert.Contains(t, e.Message, tt.field, "the server should learn which argument is wrong")
			}
			assert.NotContains(t, e.Message, "Go value", "no Go type jargon on the wire")
		})
	}
}

func TestAsErrorTypedNil(t *testing.T) {
	// A handler that declares `var e *shellyws.Error` and returns it has
	// returned a non-nil error; the device must still answer, not panic
	// dereferencing the result.
	var typedNil *shellyws.Error
	for _, err := range []error{typedNil, fmt.Errorf("wrapped: %w", typedNil)} {
		got := shellyws.AsError(err)
		require.NotNil(t, got, "AsError(%v) must not be nil for a non-nil error", err)
		assert.Equal(t, shellyws.CodeInternal, got.Code)
		assert.NotEmpty(t, got.Message)
	}
}

func TestComponentOwnMethodsAnswerAsRegister(t *testing.T) {
	// OwnMethods must answer every request exactly as a Mux filled by
	// Register does, so a fleet can use it instead of a Mux per device.
	viaMux, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	m := shellyws.NewMux()
	viaMux.Register(m)
	own, err := shellyws.New(testDeviceID)
	require.NoError(t, err)
	d := own.OwnMethods()

	steps := []struct{ method, params string }{
		{"Ws.GetConfig", ""},
		{"ws.getstatus", ""},
		{"WS.SETCONFIG", `{"config":{"enable":true,"server":"ws://127.0.0.1:1/rpc"}}`},
		{"Ws.GetConfig", ""},
		{"Ws.SetConfig", `{"config":{"enable":"yes"}}`},
		{"Ws.SetConfig", `{"config":{"server":"ftp://127.0.0.1/"}}`},
		{"Ws.GetConfig", ""},
		{"Shelly.SetAuth", `{"user":"admin","realm":"` + testDeviceID + `","ha1":null}`},
		{"Shelly.SetAuth", `{"user":"root"}`},
		{"Ws.Nope", ""},
	}
	for _, s := range steps {
		want, wantErr := dispatch(t, m, s.method, s.params)
		got, gotErr := dispatch(t, d, s.method, s.params)
		if wantErr != nil {
			require.Error(t, gotErr, s.method)
			assert.Equal(t, shellyws.AsError(wantErr).Code, shellyws.AsError(gotErr).Code, s.method)
			assert.Equal(t, shellyws.AsError(wantErr).Message, shellyws.AsError(gotErr).Message, s.method)
			continue
		}
		require.NoError(t, gotErr, s.method)
		assert.JSONEq(t, want, got, s.method)
	}
	got, err := dispatch(t, d, "shelly.listmethods", "")
	require.NoError(t, err)
	assert.JSONEq(t, `{"methods":["Shelly.ListMethods","Shelly.SetAuth","Ws.GetConfig","Ws.GetStatus","Ws.SetConfig"]}`, got)
}
