package shellywstest

// PendingCalls returns how many calls on c wait for a response.
func PendingCalls(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}
