// Package faultpoint marks the points inside the embedded stores' writes where a crash
// test may stop the process: between writing a record and syncing it, between syncing
// a temporary file and renaming it, and so on.
//
// Production code calls [Hit] with the point's name; it costs one atomic load while no
// hook is installed, which is always the case outside tests. A crash test's child
// process installs a hook with [Set] that kills the process at the Nth point it
// reaches, so every crash position is deterministic: no sleeps, no timing.
package faultpoint

import "sync/atomic"

var hook atomic.Pointer[func(name string)]

// Hit reports that the calling goroutine reached the fault point name.
func Hit(name string) {
	if f := hook.Load(); f != nil {
		(*f)(name)
	}
}

// Set installs fn as the hook every Hit calls (nil removes it). Tests only.
func Set(fn func(name string)) {
	if fn == nil {
		hook.Store(nil)
		return
	}
	hook.Store(&fn)
}
