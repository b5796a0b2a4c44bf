package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// backoffNote is the start of the library's line when a server asks for a
// longer back-off (protocol section 12); without -v the simulator prints
// only these of the library's lines: a device silent for minutes must say
// why.
const backoffNote = "shellyws: server asked to back off"

// notesHandler prints the library's back-off lines at the default level.
// A fleet prints at most one a second, then says how many it left out, so
// that a server refusing 10,000 devices does not print 10,000 lines.
type notesHandler struct {
	*notes
	device string // from the logger's attributes
}

// notes is what the handlers of one process share.
type notes struct {
	out   *printer
	every time.Duration // 0: every line (one device)

	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (h *notesHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *notesHandler) WithGroup(string) slog.Handler                { return h }

func (h *notesHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "device" {
			c.device = a.Value.String()
		}
	}
	return &c
}

func (h *notesHandler) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, backoffNote) {
		return nil
	}
	h.mu.Lock()
	if h.every > 0 && r.Time.Sub(h.last) < h.every {
		h.skipped++
		h.mu.Unlock()
		return nil
	}
	skipped := h.skipped
	h.last, h.skipped = r.Time, 0
	h.mu.Unlock()
	line := clock() + " " + strings.TrimPrefix(r.Message, "shellyws: ")
	device := h.device
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "device" {
			device = a.Value.String()
		}
		return true
	})
	if device != "" && h.every > 0 {
		line = fmt.Sprintf("%s (%s)", line, device)
	}
	if skipped > 0 {
		line = fmt.Sprintf("%s; %d more devices were asked in the last %v", line, skipped, h.every)
	}
	h.out.printf("%s", line)
	return nil
}
