package shellyws_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/shellyws/shellyws"
	"github.com/shellyws/shellyws/shellywstest"
)

// A firmware keeps the password's hash in a file next to its config; once
// it is set, its web server asks for it (curl --digest -u admin:PASSWORD
// works) and its device info says so.
func ExampleComponent_SetAuth() {
	const id = "shellyplus1pm-c049ef8cf4e0"
	dir, cleanup := exampleTempDir()
	defer cleanup()
	dev, err := shellyws.New(id, shellyws.WithAuthStore(shellyws.NewFileAuthStore(filepath.Join(dir, "auth.json"))))
	if err != nil {
		fmt.Println(err)
		return
	}
	// As Shelly.SetAuth {"user":"admin","realm":id,"ha1":...} would.
	if err := dev.SetAuth(shellyws.PasswordAuth(id, "secret")); err != nil {
		fmt.Println(err)
		return
	}
	info, _ := json.Marshal(dev.AuthInfo())
	fmt.Println(string(info))

	h := shellyws.NewHandler(dev)
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer h.Close()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/rpc/Ws.GetStatus")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	fmt.Println(resp.StatusCode, challenge[:strings.Index(challenge, " nonce=")])

	client := &http.Client{Transport: &shellywstest.DigestTransport{Password: "secret", Base: tr}}
	resp, err = client.Get(srv.URL + "/rpc/Ws.GetStatus")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// {"auth_en":true,"auth_domain":"shellyplus1pm-c049ef8cf4e0"}
	// 401 Digest qop="auth", realm="shellyplus1pm-c049ef8cf4e0",
	// 200 {"connected":false}
}

// exampleTempDir makes a directory for an example's files; examples have no
// t.TempDir.
func exampleTempDir() (string, func()) {
	dir, err := os.MkdirTemp("", "shellyws-example-")
	if err != nil {
		panic(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}
