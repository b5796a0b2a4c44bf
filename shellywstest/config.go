package shellywstest

import "github.com/shellyws/shellyws"

// Config returns the Outbound Websocket config of a device that dials this
// server: shellyws.DefaultConfig() with enable true and server URL(). Call
// it once the server is started. A test hands it to the device in one line:
//
//	dev, err := shellyws.New(id, shellyws.WithConfigStore(shellyws.NewMemoryStore(srv.Config())))
//
// shellyws.Config's Server and SSLCA are *string (null is a value of its
// own on the wire). To write another config inline, Go 1.26's new takes an
// expression:
//
//	cfg := shellyws.Config{Enable: true, Server: new(srv.URL() + "?token=x"), SSLCA: new("*")}
func (s *Server) Config() shellyws.Config {
	cfg := shellyws.DefaultConfig()
	cfg.Enable = true
	cfg.Server = new(s.URL())
	return cfg
}
