package memvector

// Abandon drops d as a crashed process would: the background compactor is stopped, the
// log and lock files are closed without making pending records durable, and nothing is
// written. Records already acknowledged are in the log (they were fsynced).
func (d *Driver) Abandon() {
	if d.log == nil {
		return
	}
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
		d.log.mu.Lock()
		d.log.f.Close()
		d.log.err = errClosed
		d.log.mu.Unlock()
		d.lock.Close()
	})
}

// LogName returns the file name of log generation gen of the index at path.
func LogName(path string, gen uint64) string { return logName(path, gen) }

// SkipSync makes fsync a no-op until the test ends. Tests whose crashes are simulated
// in-process (where the page cache survives anyway) use it to stay fast.
func SkipSync(t interface{ Cleanup(func()) }) {
	skipSync.Store(true)
	t.Cleanup(func() { skipSync.Store(false) })
}

// BreakLog closes the log file under the driver, so that its next write fails as a
// full or failing disk would.
func (d *Driver) BreakLog() {
	d.log.mu.Lock()
	d.log.f.Close()
	d.log.mu.Unlock()
}

// BufferedLog makes the logs created until the test ends go through the page cache
// instead of direct I/O, as on file systems without direct I/O.
func BufferedLog(t interface{ Cleanup(func()) }) {
	directIO.Store(false)
	t.Cleanup(func() { directIO.Store(true) })
}

// DirectLogs undoes BufferedLog.
func DirectLogs(t interface{ Cleanup(func()) }) { directIO.Store(true) }

// DirectLog reports whether d's current log is written with direct I/O.
func (d *Driver) DirectLog() bool {
	d.log.mu.Lock()
	defer d.log.mu.Unlock()
	return d.log.direct
}
