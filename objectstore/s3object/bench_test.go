package s3object_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/objectstore"
)

// BenchmarkPutGet compares the clone-scoped Bucket with the raw aws-sdk-go-v2 client on
// the same server, bucket, HTTP client and object sizes. Run it against MinIO with
//
//	go test -run '^$' -bench PutGet -count 6 ./objectstore/s3object/
//
// and compare raw/* with scoped/* (the target is scoped <= 1.05x raw).
func BenchmarkPutGet(b *testing.B) {
	env := s3test.Require(b)
	ctx := context.Background()
	bucket := s3test.NewBucket(b, env, false)
	raw := env.Client()
	store := open(b, env, bucket, nil)
	ca, _ := newClones(b)
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"4MiB", 4 << 20}} {
		data := make([]byte, size.n)
		rand.Read(data)
		rawKey, _ := objectstore.Key(ca, "bench", "raw-"+size.name)
		buf := make([]byte, 0, size.n)
		b.Run("Put/"+size.name+"/raw", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				if _, err := raw.PutObject(ctx, &s3.PutObjectInput{
					Bucket: &bucket, Key: &rawKey, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(size.n)),
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Put/"+size.name+"/scoped", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				if _, err := store.Put(ctx, ca, "bench", "scoped-"+size.name, bytes.NewReader(data), &objectstore.WriteOptions{Size: int64(size.n)}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Get/"+size.name+"/raw", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				out, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &rawKey})
				if err != nil {
					b.Fatal(err)
				}
				buf = readInto(b, buf, out.Body)
			}
		})
		b.Run("Get/"+size.name+"/scoped", func(b *testing.B) {
			b.SetBytes(int64(size.n))
			for b.Loop() {
				r, err := store.Get(ctx, ca, "bench", "scoped-"+size.name, nil)
				if err != nil {
					b.Fatal(err)
				}
				buf = readInto(b, buf, r)
			}
		})
	}
}

func readInto(b *testing.B, buf []byte, r io.ReadCloser) []byte {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	r.Close()
	return buf
}

// BenchmarkOverhead interleaves raw and scoped operations (alternating which goes
// first) so both see the same server load, and reports the ratio of their median
// latencies as "scoped/raw" (target <= 1.05) next to each side's median:
//
//	go test -run '^$' -bench Overhead -benchtime 200x ./objectstore/s3object/
func BenchmarkOverhead(b *testing.B) {
	env := s3test.Require(b)
	ctx := context.Background()
	bucket := s3test.NewBucket(b, env, false)
	raw := env.Client()
	store := open(b, env, bucket, nil)
	ca, _ := newClones(b)
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", 4 << 10}, {"4MiB", 4 << 20}} {
		data := make([]byte, size.n)
		rand.Read(data)
		rawKey, _ := objectstore.Key(ca, "bench", "raw-"+size.name)
		name := "scoped-" + size.name
		buf := make([]byte, 0, size.n)
		ops := map[string][2]func(){
			"Put": {
				func() {
					if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &rawKey, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(size.n))}); err != nil {
						b.Fatal(err)
					}
				},
				func() {
					if _, err := store.Put(ctx, ca, "bench", name, bytes.NewReader(data), &objectstore.WriteOptions{Size: int64(size.n)}); err != nil {
						b.Fatal(err)
					}
				},
			},
			"Get": {
				func() {
					out, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &rawKey})
					if err != nil {
						b.Fatal(err)
					}
					buf = readInto(b, buf, out.Body)
				},
				func() {
					r, err := store.Get(ctx, ca, "bench", name, nil)
					if err != nil {
						b.Fatal(err)
					}
					buf = readInto(b, buf, r)
				},
			},
		}
		ops["Put"][0]() // create both objects, whichever benchmarks run
		ops["Put"][1]()
		for _, op := range []string{"Put", "Get"} {
			f := ops[op]
			b.Run(op+"/"+size.name, func(b *testing.B) {
				f[0]() // warm up both paths
				f[1]()
				var spent [2][]time.Duration
				i := 0
				for b.Loop() {
					for j := range 2 {
						k := (i + j) % 2
						start := time.Now()
						f[k]()
						spent[k] = append(spent[k], time.Since(start))
					}
					i++
				}
				// Medians: on a shared machine a few stalls would dominate means.
				raw, scoped := median(spent[0]), median(spent[1])
				b.ReportMetric(float64(raw.Nanoseconds()), "raw-p50-ns")
				b.ReportMetric(float64(scoped.Nanoseconds()), "scoped-p50-ns")
				b.ReportMetric(float64(scoped)/float64(raw), "scoped/raw")
			})
		}
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}
