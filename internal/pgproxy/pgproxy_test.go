package pgproxy

import (
	"encoding/binary"
	"testing"
)

func msg(typ byte, payload string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(payload)))
	return append(b, payload...)
}

// TestMsgReaderSplitsAcrossChunks: messages are found whatever the chunking, the
// startup message is read untyped, and an SSLRequest makes the next message untyped too.
func TestMsgReaderSplitsAcrossChunks(t *testing.T) {
	ssl := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f} // SSLRequest (80877103)
	startup := []byte{0, 0, 0, 8, 0, 3, 0, 0}         // protocol 3.0, no parameters
	var stream []byte
	stream = append(stream, ssl...)
	stream = append(stream, startup...)
	stream = append(stream, msg('P', "parse")...)
	stream = append(stream, msg('S', "")...)
	stream = append(stream, msg('Q', "SELECT 1\x00")...)
	for size := 1; size <= len(stream); size++ {
		r := &msgReader{startup: true}
		var got []byte
		for i := 0; i < len(stream); i += size {
			r.feed(stream[i:min(i+size, len(stream))], func(typ byte, payload []byte) {
				got = append(got, typ)
				if typ == 0 && binary.BigEndian.Uint32(payload) == 80877103 {
					r.startup = true
				}
			})
		}
		if string(got) != "\x00\x00PSQ" {
			t.Fatalf("chunks of %d: messages %q; want startup twice, P, S, Q", size, got)
		}
	}
}
