package memvector

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// The log and the snapshot share one little-endian encoding of strings, metadata and
// vector values: a string is a uvarint length and its bytes; metadata is a uvarint
// count of entries, each a key and a tagged value; values are raw IEEE-754 float32.

// Metadata value tags.
const (
	tagString byte = 's'
	tagNumber byte = 'n'
	tagBool   byte = 'b'
	tagList   byte = 'l'
)

// nativeLittle reports whether float32 slices can be read and written as bytes as
// they are in memory (every platform Go supports but a few big-endian ones).
var nativeLittle = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// floatBytes returns the memory of v as bytes (only with nativeLittle).
func floatBytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), len(v)*4)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloats(b []byte, v []float32) []byte {
	if nativeLittle {
		return append(b, floatBytes(v)...)
	}
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// putFloats decodes len(dst) float32 values from src.
func putFloats(dst []float32, src []byte) {
	if nativeLittle {
		copy(floatBytes(dst), src)
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

var errUnsupportedValue = errors.New("memvector: unsupported metadata value")

// uvarintLen returns the length of the uvarint encoding of x.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// stringLen returns the length of appendString's encoding of s.
func stringLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

// metadataLen returns the length of appendMetadata's encoding of md, or the error it
// would return.
func metadataLen(md map[string]any) (int, error) {
	n := uvarintLen(uint64(len(md)))
	for k, v := range md {
		n += stringLen(k) + 1
		switch x := v.(type) {
		case string:
			n += stringLen(x)
		case float64:
			n += 8
		case bool:
			n++
		case []string:
			n += uvarintLen(uint64(len(x)))
			for _, s := range x {
				n += stringLen(s)
			}
		default:
			return 0, fmt.Errorf("%w %T for key %q", errUnsupportedValue, v, k)
		}
	}
	return n, nil
}

func appendMetadata(b []byte, md map[string]any) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(len(md)))
	for k, v := range md {
		var err error
		if b, err = appendMetadataEntry(b, k, v); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendMetadataEntry appends one entry of metadata (appendMetadata writes the count
// of entries before them).
func appendMetadataEntry(b []byte, k string, v any) ([]byte, error) {
	b = appendString(b, k)
	switch x := v.(type) {
	case string:
		b = append(b, tagString)
		b = appendString(b, x)
	case float64:
		b = append(b, tagNumber)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
	case bool:
		b = append(b, tagBool)
		if x {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	case []string:
		b = append(b, tagList)
		b = binary.AppendUvarint(b, uint64(len(x)))
		for _, s := range x {
			b = appendString(b, s)
		}
	default:
		return nil, fmt.Errorf("%w %T for key %q", errUnsupportedValue, v, k)
	}
	return b, nil
}

// decoder reads the encoding from a byte slice; the first error sticks.
type decoder struct {
	b   []byte
	err error
	// intern, if set, returns one string per distinct short metadata key or string
	// value (keys and scope IDs repeat in every record), so that decoding a snapshot
	// or a log does not allocate them again and again.
	intern map[string]string
}

// internMax bounds the strings a decoder interns and how many.
const (
	internMaxLen   = 64
	internMaxCount = 1 << 14
)

// short reads a string that is likely to repeat.
func (d *decoder) short() string {
	b := d.bytes(d.count(1))
	if d.intern == nil || len(b) > internMaxLen {
		return string(b)
	}
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < internMaxCount {
		d.intern[s] = s
	}
	return s
}

var errShort = errors.New("memvector: truncated record")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a uvarint count of items that take at least min bytes each.
func (d *decoder) count(min int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/max(min, 1)) {
		d.fail(errShort)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || len(d.b) < n {
		d.fail(errShort)
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string { return string(d.bytes(d.count(1))) }

func (d *decoder) floats(dst []float32) {
	if src := d.bytes(4 * len(dst)); src != nil {
		putFloats(dst, src)
	}
}

func (d *decoder) metadata() map[string]any {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	md := make(map[string]any, n)
	for range n {
		k := d.short()
		switch d.byte() {
		case tagString:
			md[k] = d.short()
		case tagNumber:
			if b := d.bytes(8); b != nil {
				md[k] = math.Float64frombits(binary.LittleEndian.Uint64(b))
			}
		case tagBool:
			md[k] = d.byte() == 1
		case tagList:
			l := make([]string, d.count(1))
			for i := range l {
				l[i] = d.string()
			}
			md[k] = l
		default:
			d.fail(errors.New("memvector: unknown metadata tag"))
		}
		if d.err != nil {
			return nil
		}
	}
	return md
}
