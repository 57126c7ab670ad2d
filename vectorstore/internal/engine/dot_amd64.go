package engine

import "golang.org/x/sys/cpu"

// dotAVX2 is dot with AVX2 and FMA: four 8-wide accumulators. len(a) == len(b).
//
//go:noescape
func dotAVX2(a, b []float32) float32

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		dot = dotAVX2
	}
}
