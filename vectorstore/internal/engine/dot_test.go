package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestKernelsAgree checks the kernel in use (AVX2 on capable amd64 CPUs) against the
// portable one, for every length up to 200 (all loop tails).
func TestKernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for n := range 201 {
		a, b := make([]float32, n), make([]float32, n)
		for i := range a {
			a[i], b[i] = r.Float32()*2-1, r.Float32()*2-1
		}
		got, want := dot(a, b), dotGo(a, b)
		if math.Abs(float64(got-want)) > 1e-4*math.Max(1, math.Abs(float64(want))) {
			t.Fatalf("length %d: kernel %v, portable %v", n, got, want)
		}
	}
}

func BenchmarkDot(b *testing.B) {
	a, c := make([]float32, 1536), make([]float32, 1536)
	for i := range a {
		a[i], c[i] = float32(i%7), float32(i%5)
	}
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			sink += dot(a, c)
		}
	})
	b.Run("portable", func(b *testing.B) {
		for b.Loop() {
			sink += dotGo(a, c)
		}
	})
}

var sink float32
