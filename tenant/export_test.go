package tenant

// SetFailAt installs a hook called at each offboarding step ("rows", "vectors",
// "objects", "verify", "receipt", "tombstone") that may fail it: the crash in crash-and-resume tests.
func SetFailAt(a *Admin, f func(step string) error) { a.failAt = f }
