package records

import "time"

// SetClock makes records stamp f() instead of the current time until the returned
// function is called (tests only; not safe with parallel tests that rely on the clock).
func SetClock(f func() time.Time) (restore func()) {
	clock.Store(&f)
	return func() { clock.Store(nil) }
}
