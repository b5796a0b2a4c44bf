package bpool

import "testing"

func TestClasses(t *testing.T) {
	b := Get()
	if len(*b) != 0 || cap(*b) < 512 {
		t.Fatalf("Get: len %d cap %d", len(*b), cap(*b))
	}
	*b = append(*b, "frame"...)
	Put(b)
	if b := Get(); len(*b) != 0 {
		t.Fatalf("a recycled buffer is not empty: %q", *b)
	}
	l := GetLarge()
	if len(*l) != Large {
		t.Fatalf("GetLarge: len %d", len(*l))
	}
	Put(l)
	Put(nil)
	huge := make([]byte, 0, 2*Large)
	Put(&huge) // dropped, not kept
}

// A buffer round trip allocates nothing.
func TestRecyclingAllocatesNothing(t *testing.T) {
	Put(Get())
	if n := testing.AllocsPerRun(100, func() { b := Get(); *b = append(*b, 'x'); Put(b) }); n > 0.5 { // -race drops some of what sync.Pool is given
		t.Errorf("%.2f allocations per Get and Put", n)
	}
}
