// Package failer provides a test.Failer (istio.io/istio/pkg/test) for running Istio's in-process
// test harness (pilot/test/xds.FakeDiscoveryServer, pilot/pkg/networking/core.ConfigGenTest) inside
// a command-line program.
//
// Istio's harness reports problems by calling t.Fatal, which in `go test` ends the test goroutine
// with runtime.Goexit. Here a fatal call records the message and ends only the goroutine that made
// it; Run turns the first recorded failure (or a panic) into a returned error. Nothing in this
// package exits the process.
package failer

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
)

// Failer implements istio.io/istio/pkg/test.Failer. The zero value is not usable; use New.
type Failer struct {
	mu       sync.Mutex
	err      error
	logs     []string
	cleanups []func()
	closed   bool
	// Echo, when set, receives every Log/Logf line as it happens (for --verbose).
	Echo func(string)
}

// New returns a Failer with nothing recorded.
func New() *Failer { return &Failer{} }

func (f *Failer) record(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = errors.New(msg)
	}
}

// Fail marks a failure without stopping the calling goroutine.
func (f *Failer) Fail() { f.record("Fail called") }

// FailNow records a failure and ends the calling goroutine (runtime.Goexit), as testing.T does.
func (f *Failer) FailNow() {
	f.record("FailNow called")
	runtime.Goexit()
}

// Fatal records a failure with a message and ends the calling goroutine.
func (f *Failer) Fatal(args ...any) {
	f.record(strings.TrimSuffix(fmt.Sprintln(args...), "\n"))
	runtime.Goexit()
}

// Fatalf records a formatted failure and ends the calling goroutine.
func (f *Failer) Fatalf(format string, args ...any) {
	f.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// Skip is treated as a failure: a command has nothing to skip to.
func (f *Failer) Skip(args ...any) {
	f.record("skipped: " + strings.TrimSuffix(fmt.Sprintln(args...), "\n"))
	runtime.Goexit()
}

// Log keeps a line for Logs (and echoes it when Echo is set).
func (f *Failer) Log(args ...any) { f.log(strings.TrimSuffix(fmt.Sprintln(args...), "\n")) }

// Logf keeps a formatted line for Logs.
func (f *Failer) Logf(format string, args ...any) { f.log(fmt.Sprintf(format, args...)) }

func (f *Failer) log(s string) {
	f.mu.Lock()
	f.logs = append(f.logs, s)
	echo := f.Echo
	f.mu.Unlock()
	if echo != nil {
		echo(s)
	}
}

// Helper is a no-op (there is no test output to attribute lines in).
func (f *Failer) Helper() {}

// TempDir creates a directory that Close removes.
func (f *Failer) TempDir() string {
	dir, err := os.MkdirTemp("", "meshlab-oracle-")
	if err != nil {
		f.Fatalf("TempDir: %v", err)
	}
	f.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Cleanup registers fn to run at Close, last registered first (as testing.T does).
func (f *Failer) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// Err returns the first failure recorded, or nil.
func (f *Failer) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Logs returns the lines logged so far.
func (f *Failer) Logs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.logs...)
}

// Close runs the registered cleanups once, last registered first. A panicking cleanup is recorded
// as a failure and the remaining cleanups still run.
func (f *Failer) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return f.Err()
	}
	f.closed = true
	cleanups := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					f.record(fmt.Sprintf("cleanup panicked: %v", r))
				}
			}()
			cleanups[i]()
		}()
	}
	return f.Err()
}

// Run calls fn on a new goroutine and waits for it. It returns an error when fn called
// Fatal/FailNow/Skip (ending that goroutine), panicked, or when any failure was recorded,
// for instance by another goroutine of the harness. Cleanups are not run: call Close.
func (f *Failer) Run(fn func()) (err error) {
	done := make(chan error, 1)
	go func() {
		finished := false
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("panic: %v", r)
				return
			}
			if !finished {
				if e := f.Err(); e != nil {
					done <- e
				} else {
					done <- errors.New("goroutine exited without a recorded failure")
				}
				return
			}
			done <- f.Err()
		}()
		fn()
		finished = true
	}()
	return <-done
}
