package memvector

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// FuzzMetadataLen: the record size that upsert reserves in the log's group buffer is
// metadataLen's; it must equal the length appendMetadata writes, or the record would
// not fill its place (and the log would fail).
func FuzzMetadataLen(f *testing.F) {
	f.Add("document_id", "doc-1", 3.5, true, "a,b", 0)
	f.Add("", "", 0.0, false, "", 200)
	f.Add("k", strings.Repeat("x", 127), -1.0, true, strings.Repeat("y,", 130), 16400)
	f.Fuzz(func(t *testing.T, key, str string, num float64, flag bool, list string, pad int) {
		pad = min(max(pad, 0), 1<<17)
		md := map[string]any{
			key:                    str + strings.Repeat("p", pad),
			key + "#n":             num,
			key + "#b":             flag,
			key + "#l":             strings.Split(list, ","),
			strings.Repeat(key, 3): []string{},
		}
		for n := range len(md) + 1 {
			sub := map[string]any{}
			for k, v := range md {
				if len(sub) == n {
					break
				}
				sub[k] = v
			}
			want, err := appendMetadata(nil, sub)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := metadataLen(sub); err != nil || got != len(want) {
				t.Fatalf("metadataLen = %d, %v; appendMetadata wrote %d bytes", got, err, len(want))
			}
		}
		bad := map[string]any{key: str, key + "#x": 3}
		_, aerr := appendMetadata(nil, bad)
		_, lerr := metadataLen(bad)
		if !errors.Is(aerr, errUnsupportedValue) || !errors.Is(lerr, errUnsupportedValue) {
			t.Fatalf("an int value: appendMetadata %v, metadataLen %v; want both to refuse it", aerr, lerr)
		}
	})
}

// TestUvarintLen checks uvarintLen at every length boundary of the encoding.
func TestUvarintLen(t *testing.T) {
	for _, x := range []uint64{0, 1, 127, 128, 16383, 16384, 1<<21 - 1, 1 << 21, 1<<63 - 1, 1<<64 - 1} {
		var b [10]byte
		n := len(binary.AppendUvarint(b[:0], x))
		if got := uvarintLen(x); got != n {
			t.Fatalf("uvarintLen(%d) = %d, the encoding has %d bytes", x, got, n)
		}
	}
}
