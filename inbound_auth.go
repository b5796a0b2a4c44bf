package shellyws

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/shellyws/shellyws/internal/digest"
	"github.com/shellyws/shellyws/internal/frame"
)

// The Handler's side of digest authentication: which requests are
// checked, with which credentials, and how a refusal is answered on each
// inbound form. The pure parts (parsers, challenges, the nonce table) are
// internal/digest's.

// checkAuth runs the gate (on WithClock's clock, opts.clock) for a
// request of h's device, with the table emptied first when the device
// rebooted or slept since the gate was last used (nonces live in RAM).
func (h *Handler) checkAuth(a AuthConfig, creds ...*digest.Credential) digest.Verdict {
	power, _ := h.c.powerState()
	boot := authEpoch{power: power, wakes: h.c.wake.wakes.Load()}
	h.mu.Lock()
	if h.authBoot != boot {
		if h.authBoot.power != nil {
			h.auth.Reset()
		}
		h.authBoot = boot
	}
	h.mu.Unlock()
	return h.auth.Check(a.Realm, a.HA1, creds...)
}

// authEpoch tells one boot of a device from the next: a reboot makes a new
// power context, a wake counts up.
type authEpoch struct {
	power context.Context
	wakes uint64
}

// errLockedOut is the RPC error of a request refused during a lockout.
func errLockedOut() *Error {
	return &Error{Code: http.StatusTooManyRequests, Message: digest.TooManyFailuresMessage}
}

// authorizeFrame decides an RPC frame on an inbound websocket: nil admits
// it, otherwise the *Error to answer (401 with the challenge, or 429).
func (h *Handler) authorizeFrame(req *Request) error {
	a := h.c.auth.get()
	if !a.Enable || isExempt(req.Method) {
		return nil
	}
	var cr *digest.Credential
	if len(req.auth) > 0 {
		cr, _ = digest.ParseAuthObject(req.auth)
	}
	v := h.checkAuth(a, cr)
	switch {
	case v.OK:
		return nil
	case v.Locked:
		h.log.Debug("shellyws: inbound request refused: locked out", "method", req.Method)
		return errLockedOut()
	}
	h.log.Debug("shellyws: inbound request challenged", "method", req.Method, "with_auth", len(req.auth) > 0)
	return &Error{Code: CodeUnauthorized, Message: digest.ChallengeMessage(a.Realm, v.Nonce, v.Stale)}
}

// authorizeHTTP decides a REST request (GET or POST /rpc/<method>, GET
// /shelly) by its Authorization header. It answers 401, 400 or 429 itself
// and returns false when the request must go no further.
func (h *Handler) authorizeHTTP(w http.ResponseWriter, r *http.Request, method string) bool {
	a := h.c.auth.get()
	if !a.Enable || isExempt(method) {
		return true
	}
	cr, ok := h.headerCredential(w, r)
	if !ok {
		return false
	}
	v := h.checkAuth(a, cr)
	if v.OK {
		return true
	}
	h.refuseHTTP(w, r, a, v, func(e *Error) []byte { return appendErrorObject(nil, e.Code, e.Message) })
	return false
}

// authorizePostFrame decides POST /rpc by its body, before the frame is
// decoded for dispatch: a valid auth object in the frame or a valid
// Authorization header admits it. A body that is no frame is challenged
// too, not answered 400, because curl --digest sends its first request
// with an empty body. A refusal is answered with the HTTP status (401 with
// WWW-Authenticate, or 429) and, for a frame with an id, the response
// frame carrying the same error.
func (h *Handler) authorizePostFrame(w http.ResponseWriter, r *http.Request, body []byte) bool {
	a := h.c.auth.get()
	if !a.Enable {
		return true
	}
	var req *Request
	var cr *digest.Credential
	if fr, err := frame.Decode(body); err == nil {
		if isExempt(fr.Method) {
			return true
		}
		req = &Request{ID: fr.ID, Src: fr.Src, Method: fr.Method}
		if len(fr.Auth) > 0 {
			cr, _ = digest.ParseAuthObject(fr.Auth)
		}
	}
	hdr, ok := h.headerCredential(w, r)
	if !ok {
		return false
	}
	v := h.checkAuth(a, cr, hdr)
	if v.OK {
		return true
	}
	h.refuseHTTP(w, r, a, v, func(e *Error) []byte {
		if req == nil || req.ID == nil {
			return appendErrorObject(nil, e.Code, e.Message)
		}
		return h.c.appendResponse(nil, req, nil, e)
	})
	return false
}

// headerCredential parses the Authorization header: nil without one (or
// with another scheme, which is challenged like none); a malformed Digest
// header is answered 400 and ok is false. Nothing of the header is logged
// or echoed.
func (h *Handler) headerCredential(w http.ResponseWriter, r *http.Request) (cr *digest.Credential, ok bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return nil, true
	}
	if len(vals) > 1 {
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Malformed Authorization header: given more than once")
		return nil, false
	}
	d, err := digest.ParseHeader(vals[0])
	switch {
	case errors.Is(err, digest.ErrNotDigest):
		return nil, true
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Malformed Authorization header: "+err.Error())
		return nil, false
	}
	cr, err = d.Credential(r.Method, r.RequestURI)
	switch {
	case errors.Is(err, digest.ErrUnsupported):
		return nil, true // challenged, with the algorithm and qop we take
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, CodeInvalidArgument, "Malformed Authorization header: "+err.Error())
		return nil, false
	}
	return cr, true
}

func (h *Handler) refuseHTTP(w http.ResponseWriter, r *http.Request, a AuthConfig, v digest.Verdict, body func(*Error) []byte) {
	if v.Locked {
		secs := int((v.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.log.Debug("shellyws: inbound HTTP request refused: locked out", "remote", r.RemoteAddr, "path", r.URL.Path)
		writeJSON(w, http.StatusTooManyRequests, body(errLockedOut()))
		return
	}
	w.Header().Set("WWW-Authenticate", digest.ChallengeHeader(a.Realm, v.Nonce, v.Stale))
	h.log.Debug("shellyws: inbound HTTP request challenged", "remote", r.RemoteAddr, "path", r.URL.Path)
	writeJSON(w, http.StatusUnauthorized, body(&Error{Code: CodeUnauthorized, Message: digest.ChallengeMessage(a.Realm, v.Nonce, v.Stale)}))
}
