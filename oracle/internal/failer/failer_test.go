package failer

import (
	"strings"
	"testing"
)

func TestFatalBecomesError(t *testing.T) {
	f := New()
	reached := false
	err := f.Run(func() {
		f.Fatalf("bad object %s", "x")
		reached = true
	})
	if err == nil || err.Error() != "bad object x" {
		t.Fatalf("err = %v", err)
	}
	if reached {
		t.Error("Fatalf returned to its caller")
	}
}

func TestPanicBecomesError(t *testing.T) {
	f := New()
	err := f.Run(func() { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v", err)
	}
}

func TestFailInAnotherGoroutineIsReported(t *testing.T) {
	f := New()
	err := f.Run(func() {
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.Fatal("from a helper goroutine")
		}()
		<-done
	})
	if err == nil || err.Error() != "from a helper goroutine" {
		t.Fatalf("err = %v", err)
	}
}

func TestCleanupsRunLastFirstOnce(t *testing.T) {
	f := New()
	var order []int
	f.Cleanup(func() { order = append(order, 1) })
	f.Cleanup(func() { order = append(order, 2) })
	f.Cleanup(func() { panic("cleanup 3") })
	err := f.Close()
	_ = f.Close()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Errorf("order = %v, want [2 1]", order)
	}
	if err == nil || !strings.Contains(err.Error(), "cleanup 3") {
		t.Errorf("a panicking cleanup should be reported, got %v", err)
	}
}

func TestSuccessIsNil(t *testing.T) {
	f := New()
	if err := f.Run(func() { f.Log("fine") }); err != nil {
		t.Fatal(err)
	}
	if got := f.Logs(); len(got) != 1 || got[0] != "fine" {
		t.Errorf("logs = %v", got)
	}
}
