package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// callTimeout bounds how long POST /devices/{id}/call waits for the device.
const callTimeout = 10 * time.Second

// maxCallBody bounds the body of POST /devices/{id}/call.
const maxCallBody = 1 << 20

// API returns the hub's HTTP API, meant for loopback only (it has no
// authentication):
//
//	GET  /devices              the devices seen: id, connected, remote, since
//	GET  /devices/{id}/status  the device's last full status with every delta merged in
//	POST /devices/{id}/call    {"method":"Switch.Toggle","params":{"id":0}} → the device's response frame
func (h *Hub) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Devices())
	})
	mux.HandleFunc("GET /devices/{id}/status", func(w http.ResponseWriter, r *http.Request) {
		raw, ok := h.Status(r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, ErrUnknownDevice.Error())
			return
		}
		writeJSON(w, http.StatusOK, raw)
	})
	mux.HandleFunc("POST /devices/{id}/call", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxCallBody)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "body must be {\"method\":...,\"params\":{...}}: "+err.Error())
			return
		}
		if body.Method == "" {
			writeError(w, http.StatusBadRequest, "missing \"method\"")
			return
		}
		if len(body.Params) > 0 && (body.Params[0] != '{' && string(body.Params) != "null") {
			writeError(w, http.StatusBadRequest, "\"params\" must be an object")
			return
		}
		if string(body.Params) == "null" {
			body.Params = nil
		}
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		resp, err := h.Call(ctx, r.PathValue("id"), body.Method, body.Params)
		switch {
		case err == nil:
			// The device's own answer, result or RPC error alike.
			writeJSON(w, http.StatusOK, resp)
		case errors.Is(err, ErrUnknownDevice):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, ErrNotConnected), errors.Is(err, ErrConnectionLost):
			writeError(w, http.StatusServiceUnavailable, err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			writeError(w, http.StatusGatewayTimeout, "the device did not answer in time")
		default:
			writeError(w, http.StatusBadGateway, err.Error())
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
