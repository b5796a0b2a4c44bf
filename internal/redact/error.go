package redact

import (
	"errors"
	"net/url"
	"strings"
)

// ErrorFor returns err with its text redacted for a connection to rawURL:
// the user info and query values of rawURL, raw and unescaped, are masked
// wherever they appear (a dial error may quote them outside any URL), and
// so is everything Text masks. An err whose text needs neither is returned
// as it is. A redacted error unwraps to the outermost error of err's chain
// whose own text is clean (a close status, a certificate error, a refused
// connection, …), so errors.Is and errors.As still find the cause without
// its text leaking.
func ErrorFor(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	secrets := secretsOf(rawURL)
	scrub := func(msg string) string {
		for _, s := range secrets {
			msg = strings.ReplaceAll(msg, s, Mask)
		}
		return Text(msg)
	}
	msg := err.Error()
	clean := scrub(msg)
	if clean == msg {
		return err
	}
	var cause error
	for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
		if t := e.Error(); scrub(t) == t {
			cause = e
			break
		}
	}
	return &redactedError{msg: clean, cause: cause}
}

// redactedError is an error whose text had secrets masked; see ErrorFor.
type redactedError struct {
	msg   string
	cause error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.cause }

// secretsOf lists the substrings of rawURL that must not leak: its query
// and user info, raw and unescaped. Pieces shorter than 3 bytes are left
// out: masking every "1" or "on" would make errors unreadable. A URL that
// does not parse is a secret as a whole.
func secretsOf(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return []string{rawURL}
	}
	var s []string
	add := func(v string) {
		if len(v) >= 3 {
			s = append(s, v)
		}
	}
	add(u.RawQuery)
	if q, err := url.QueryUnescape(u.RawQuery); err == nil {
		add(q)
	}
	for _, vals := range u.Query() {
		for _, v := range vals {
			add(v)
		}
	}
	if u.User != nil {
		add(u.User.String())
		add(u.User.Username())
		if p, ok := u.User.Password(); ok {
			add(p)
		}
	}
	return s
}
