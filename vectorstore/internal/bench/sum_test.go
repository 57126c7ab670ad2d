package bench

import (
	"math"
	"testing"
)

func TestStreamSum(t *testing.T) {
	for _, n := range []int{0, 1, 7, 31, 33, 1000, 1 << 19} {
		d := gen(9, n, 1)
		var want float64
		for _, x := range d {
			want += float64(x)
		}
		if got := streamSum(blocked(d, 1)); math.Abs(float64(got)-want) > 1e-2*math.Max(1, math.Sqrt(float64(n))) {
			t.Errorf("n=%d: streamSum %v, want %v", n, got, want)
		}
	}
}
