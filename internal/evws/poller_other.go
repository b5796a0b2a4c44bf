//go:build !linux

package evws

import (
	"errors"
	"syscall"
)

// Poller is Linux only; elsewhere every connection is read by a goroutine.
type Poller struct{}

// NewPoller fails outside Linux.
func NewPoller() (*Poller, error) { return nil, errors.ErrUnsupported }

// Wait returns at once.
func (p *Poller) Wait() {}

func defaultPoller() *Poller                         { return nil }
func pollable(syscall.RawConn) (int32, bool)         { return -1, false }
func (p *Poller) add(*Conn)                          {}
func (p *Poller) remove(*Conn)                       {}
func (p *Poller) closed(*Conn)                       {}
func (p *Poller) resume(*Conn)                       {}
func (p *Poller) readRaw(*Conn, []byte) (int, error) { return 0, errors.ErrUnsupported }
func (c *Conn) writeNow([]byte) (int, error)         { return 0, errors.ErrUnsupported }
func (p *Poller) goInline(f func())                  { go f() }
