package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// progressBar draws one line on a terminal, redrawn in place:
//
//	backfill documents  [=========>          ]  48%  4800/10000  12034/s
//
// It redraws at most every 100 ms, and always when a step or table changes or
// completes. When disabled it draws nothing.
type progressBar struct {
	mu      sync.Mutex
	w       io.Writer
	enabled bool
	label   string
	start   time.Time
	last    time.Time
	drawn   bool
	now     func() time.Time
}

const barWidth = 30

func newProgressBar(w io.Writer, enabled bool) *progressBar {
	return &progressBar{w: w, enabled: enabled, now: time.Now}
}

// update is a legacy.Config.Progress callback.
func (p *progressBar) update(ev legacy.Progress) {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	label := ev.Step
	if ev.Table != "" && ev.Step != "provision" && ev.Step != "objects" && ev.Step != "vectors" {
		label += " " + ev.Table
	}
	now := p.now()
	changed := label != p.label
	if changed {
		if p.drawn {
			fmt.Fprintln(p.w)
		}
		p.label, p.start = label, now
	}
	complete := ev.Total > 0 && ev.Done >= ev.Total
	if !changed && !complete && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last = now
	fmt.Fprint(p.w, "\r"+render(label, ev.Done, ev.Total, now.Sub(p.start)))
	p.drawn = true
}

// finish ends the current line.
func (p *progressBar) finish() {
	if p == nil || !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
	p.drawn, p.label = false, ""
}

// render formats one progress line; total 0 means unknown (no bar, no percentage).
func render(label string, done, total int64, elapsed time.Duration) string {
	rate := ""
	if s := elapsed.Seconds(); s > 0.05 {
		rate = fmt.Sprintf("  %.0f/s", float64(done)/s)
	}
	if total <= 0 {
		return fmt.Sprintf("%-28s %d%s", label, done, rate)
	}
	frac := float64(done) / float64(total)
	frac = min(max(frac, 0), 1)
	filled := int(frac * barWidth)
	bar := strings.Repeat("=", filled)
	if filled < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-filled-1)
	}
	return fmt.Sprintf("%-28s [%s] %3.0f%%  %d/%d%s", label, bar, frac*100, done, total, rate)
}
