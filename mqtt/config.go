package mqtt

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/shellyws/shellyws"
)

// Config is the device's mqtt config, shaped like Mqtt.GetConfig's answer.
// Pass is write-only: it is never encoded.
type Config struct {
	// Enable turns the client on.
	Enable bool `json:"enable"`
	// Server is the broker, "host:port" without scheme.
	Server *string `json:"server"`
	// ClientID is the MQTT client id; null or "" means the device id.
	ClientID *string `json:"client_id"`
	// User and Pass authenticate to the broker; null or "" sends none.
	User *string `json:"user"`
	Pass *string `json:"-"`
	// SSLCA null is plain TCP; "ca.pem", "user_ca.pem" and "*" are TLS,
	// verified as section 1 says for the outbound websocket.
	SSLCA *string `json:"ssl_ca"`
	// TopicPrefix prefixes every topic; null or "" means the device id.
	TopicPrefix *string `json:"topic_prefix"`
	// EnableRPC serves requests on <prefix>/rpc.
	EnableRPC bool `json:"enable_rpc"`
	// RPCNtf publishes notifications on <prefix>/events/rpc.
	RPCNtf bool `json:"rpc_ntf"`
	// StatusNtf publishes each component's whole status on
	// <prefix>/status/<key> when it changes.
	StatusNtf bool `json:"status_ntf"`
}

// Errors of Validate.
var (
	// ErrNoServer: enabled without a server.
	ErrNoServer = errors.New("mqtt: enabled but no server configured")
)

// Validate returns an error saying what is wrong with an enabled config: a
// server that is not host:port, an ssl_ca outside its set, a topic prefix
// with MQTT wildcards. The error is a *shellyws.Error with
// CodeInvalidArgument wrapping the cause, ready for the wire. A disabled
// config is always valid: it is stored, not used.
func (cfg Config) Validate() error {
	if !cfg.Enable {
		return nil
	}
	bad := func(key string, err error) error {
		return fmt.Errorf("%w: %w", shellyws.Errorf(shellyws.CodeInvalidArgument, "Invalid argument '%s': %v", key, err), err)
	}
	if cfg.Server == nil || *cfg.Server == "" {
		return bad("server", ErrNoServer)
	}
	if err := checkServer(*cfg.Server); err != nil {
		return bad("server", err)
	}
	if cfg.SSLCA != nil {
		switch *cfg.SSLCA {
		case shellyws.SSLCABuiltin, shellyws.SSLCAUser, shellyws.SSLCAInsecure:
		default:
			return bad("ssl_ca", errors.New("must be null, ca.pem, user_ca.pem or *"))
		}
	}
	if p := deref(cfg.TopicPrefix); strings.ContainsAny(p, "+#\x00") {
		return bad("topic_prefix", errors.New("must not hold the wildcards + or #"))
	}
	return nil
}

// checkServer accepts host:port with a port from 1 to 65535.
func checkServer(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return errors.New("want host:port, e.g. 192.168.1.10:1883")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return errors.New("the port must be a number from 1 to 65535")
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// prefixOf is the topic prefix of a device: the config's, or its id.
func prefixOf(cfg Config, id string) string {
	if p := deref(cfg.TopicPrefix); p != "" {
		return p
	}
	return id
}

// clientIDOf is the MQTT client id of a device: the config's, or its id.
func clientIDOf(cfg Config, id string) string {
	if c := deref(cfg.ClientID); c != "" {
		return c
	}
	return id
}
