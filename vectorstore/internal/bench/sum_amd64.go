package bench

import "golang.org/x/sys/cpu"

// sumAVX adds up a with AVX (four 8-wide accumulators): the cheapest possible work per
// byte, so a pass over memory with it measures memory bandwidth, not arithmetic.
//
//go:noescape
func sumAVX(a []float32) float32

func init() {
	if cpu.X86.HasAVX2 {
		sumChunk = sumAVX
	}
}
