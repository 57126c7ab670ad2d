package bench

// sumChunk is the floor's per-chunk kernel: AVX on capable amd64 CPUs (sum_amd64.go),
// else eight scalar accumulators.
var sumChunk = func(d []float32) float32 {
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(d); i += 8 {
		x := d[i : i+8 : i+8]
		s0 += x[0]
		s1 += x[1]
		s2 += x[2]
		s3 += x[3]
		s4 += x[4]
		s5 += x[5]
		s6 += x[6]
		s7 += x[7]
	}
	for ; i < len(d); i++ {
		s0 += d[i]
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}
