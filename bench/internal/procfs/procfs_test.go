package procfs

import (
	"os"
	"runtime"
	"testing"
)

func TestSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	rss, err := RSSKiB(os.Getpid())
	if err != nil || rss <= 0 {
		t.Errorf("RSSKiB(self) = %d, %v; want a positive size", rss, err)
	}
	if _, err := CPUTime(os.Getpid()); err != nil {
		t.Errorf("CPUTime(self): %v", err)
	}
	if _, err := RSSKiB(-1); err == nil {
		t.Error("RSSKiB(-1): no error")
	}
	if _, err := CPUTime(-1); err == nil {
		t.Error("CPUTime(-1): no error")
	}
}
