package shellyws_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/shellyws/shellyws"
)

// fuzzBases are the stored configs FuzzMergeConfig merges into, picked by
// the fuzzer's first argument.
func fuzzBases() []shellyws.Config {
	return []shellyws.Config{
		shellyws.DefaultConfig(),
		{Enable: true, Server: cfgStr("wss://fm.example/shelly?token=abc"), SSLCA: cfgStr("*")},
		{Enable: false, Server: cfgStr("#"), SSLCA: nil},
		{Enable: true, Server: nil, SSLCA: cfgStr("user_ca.pem")},
	}
}

// FuzzMergeConfig feeds arbitrary Ws.SetConfig params to MergeConfig. The
// seed corpus is in testdata/fuzz/FuzzMergeConfig.
func FuzzMergeConfig(f *testing.F) {
	f.Add(uint8(0), []byte(`{"config":{"enable":true,"server":"ws://h","ssl_ca":"*"}}`))
	f.Fuzz(func(t *testing.T, baseIdx uint8, params []byte) {
		bases := fuzzBases()
		base := bases[int(baseIdx)%len(bases)]
		before := base.Clone()

		got, err := shellyws.MergeConfig(base, params)

		if !equalConfig(base, before) {
			t.Fatalf("MergeConfig modified base: %+v, was %+v", base, before)
		}
		if err != nil {
			var e *shellyws.Error
			if !errors.As(err, &e) || e.Code != shellyws.CodeInvalidArgument {
				t.Fatalf("error %v is not an *Error with code -103", err)
			}
			if !equalConfig(got, base) {
				t.Fatalf("on error got %s, want base %s", cfgJSON(t, got), cfgJSON(t, base))
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("merged config %s fails Validate: %v", cfgJSON(t, got), err)
		}
		if got.Server != nil && base.Server != nil && got.Server == base.Server ||
			got.SSLCA != nil && base.SSLCA != nil && got.SSLCA == base.SSLCA {
			t.Fatalf("merged config shares a pointer with base")
		}
		out := cfgJSON(t, got)
		var keys map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &keys); err != nil {
			t.Fatal(err)
		}
		if _, ok := keys["enable"]; len(keys) != 3 || !ok {
			t.Fatalf("merged config JSON %s does not have exactly enable, server, ssl_ca", out)
		}
		if _, ok := keys["server"]; !ok {
			t.Fatalf("merged config JSON %s lacks server", out)
		}
		if _, ok := keys["ssl_ca"]; !ok {
			t.Fatalf("merged config JSON %s lacks ssl_ca", out)
		}

		// What Ws.GetConfig shows must be accepted back by Ws.SetConfig
		// unchanged, whatever the base (the file store relies on it).
		for _, other := range bases {
			again, err := shellyws.MergeConfig(other, json.RawMessage(`{"config":`+out+`}`))
			if err != nil {
				t.Fatalf("merged config %s rejected when set again: %v", out, err)
			}
			if !equalConfig(again, got) {
				t.Fatalf("setting %s again gave %s", out, cfgJSON(t, again))
			}
		}
	})
}

func equalConfig(a, b shellyws.Config) bool {
	eq := func(x, y *string) bool { return x == nil && y == nil || x != nil && y != nil && *x == *y }
	return a.Enable == b.Enable && eq(a.Server, b.Server) && eq(a.SSLCA, b.SSLCA)
}
