package extract

// SettlePDF waits until the instance kept ready for the next document is started,
// so that a benchmark does not time its baseline while that start-up runs.
func SettlePDF(p *PDF) {
	p.rt.warm.Lock() // held by a prepare that is running
	ready := len(p.rt.ready) > 0
	p.rt.warm.Unlock()
	if !ready {
		p.rt.prepare()
	}
}
