// Package pgproxy is a TCP proxy for PostgreSQL's wire protocol that counts round
// trips and can add latency, for tests and benchmarks (tests only: it is internal).
//
// A round trip is one time the client waits for the server. PostgreSQL ends every
// answer to a simple Query ('Q') or an extended-protocol Sync ('S') with ReadyForQuery
// ('Z'), and both drivers cloneiso supports wait for that ReadyForQuery before they
// send the next exchange. So the proxy counts a round trip each time the client sends a
// Query or Sync while the server has answered everything sent before it (no
// ReadyForQuery outstanding): an exchange the client has to wait for. Messages
// pipelined behind an unanswered Sync (several Syncs in one flush) count once. The
// connection's startup and authentication are counted too; tests reset the counter
// after a warm-up.
//
// Delay postpones each chunk the client sends by a fixed time before the server gets
// it (one way), simulating a database farther away; order and content are unchanged.
package pgproxy

import (
	"encoding/binary"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure [Start]; nil means no delay.
type Options struct {
	// Delay is added to every client→server chunk (one way).
	Delay time.Duration
}

// Proxy forwards connections to one PostgreSQL server.
type Proxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	trips  atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// Start listens on a free loopback port and forwards every connection to target
// (host:port).
func Start(target string, opts *Options) (*Proxy, error) {
	if opts == nil {
		opts = &Options{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, delay: opts.Delay, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL returns dsn (a postgres:// URL) pointed at the proxy instead of its host.
func (p *Proxy) URL(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.Host = p.Addr()
	return u.String(), nil
}

// RoundTrips returns the round trips counted since the start or the last [Proxy.Reset],
// over every connection.
func (p *Proxy) RoundTrips() int64 { return p.trips.Load() }

// Reset sets the round-trip counter to zero.
func (p *Proxy) Reset() { p.trips.Store(0) }

// Close stops listening, closes every forwarded connection and waits for them.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(client)
		}()
	}
}

// session is the protocol state of one connection shared by its two directions.
type session struct {
	mu          sync.Mutex
	outstanding int  // Query/Sync messages the server has not answered with ReadyForQuery
	sslAnswer   bool // the server's next byte answers an SSLRequest/GSSENCRequest
	opaque      bool // encrypted: stop parsing
}

func (p *Proxy) serve(client net.Conn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	s := &session{}
	done := make(chan struct{}, 2)
	go func() {
		p.clientToServer(client, server, s)
		server.Close()
		done <- struct{}{}
	}()
	go func() {
		p.serverToClient(server, client, s)
		client.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// clientToServer forwards the client's bytes, parsing its messages to count round
// trips, after the configured delay.
func (p *Proxy) clientToServer(client, server net.Conn, s *session) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	var out chan chunk
	writerDone := make(chan struct{})
	if p.delay > 0 {
		out = make(chan chunk, 1024)
		go func() {
			defer close(writerDone)
			for c := range out {
				if d := time.Until(c.at.Add(p.delay)); d > 0 {
					time.Sleep(d) // injected latency, not synchronization
				}
				if _, err := server.Write(c.b); err != nil {
					server.Close()
					for range out {
					}
					return
				}
			}
		}()
	} else {
		close(writerDone)
	}
	defer func() {
		if out != nil {
			close(out)
		}
		<-writerDone
	}()
	r := &msgReader{startup: true}
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			b := append([]byte(nil), buf[:n]...)
			r.feed(b, func(typ byte, payload []byte) {
				s.mu.Lock()
				defer s.mu.Unlock()
				switch {
				case s.opaque:
				case typ == 0 && len(payload) >= 4:
					switch binary.BigEndian.Uint32(payload) {
					case 80877103, 80877104: // SSLRequest, GSSENCRequest
						s.sslAnswer = true
						r.startup = true // another untyped startup message follows
					}
				case typ == 'Q' || typ == 'S':
					if s.outstanding == 0 {
						p.trips.Add(1)
					}
					s.outstanding++
				}
			})
			if out != nil {
				out <- chunk{at: time.Now(), b: b}
			} else if _, werr := server.Write(b); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// serverToClient forwards the server's bytes, parsing its messages for ReadyForQuery.
func (p *Proxy) serverToClient(server, client net.Conn, s *session) {
	r := &msgReader{}
	buf := make([]byte, 64<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			b := buf[:n]
			s.mu.Lock()
			if s.sslAnswer && !s.opaque {
				// One byte answers the SSLRequest: 'N' continues in clear text.
				s.sslAnswer = false
				if b[0] != 'N' {
					s.opaque = true
				}
				b = b[1:]
			}
			opaque := s.opaque
			s.mu.Unlock()
			if !opaque {
				r.feed(b, func(typ byte, _ []byte) {
					if typ == 'Z' {
						s.mu.Lock()
						if s.outstanding > 0 {
							s.outstanding--
						}
						s.mu.Unlock()
					}
				})
			}
			if _, werr := client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// msgReader splits a byte stream into protocol messages: a type byte and a 4-byte
// length (which counts itself), or, while startup is set, untyped messages (length
// first) as the client sends before its startup message is done.
type msgReader struct {
	startup bool
	pending []byte
}

func (r *msgReader) feed(b []byte, fn func(typ byte, payload []byte)) {
	r.pending = append(r.pending, b...)
	for {
		if r.startup {
			if len(r.pending) < 4 {
				return
			}
			n := int(binary.BigEndian.Uint32(r.pending))
			if n < 4 || len(r.pending) < n {
				return
			}
			payload := r.pending[4:n]
			r.pending = r.pending[n:]
			r.startup = false
			fn(0, payload)
			continue
		}
		if len(r.pending) < 5 {
			return
		}
		n := int(binary.BigEndian.Uint32(r.pending[1:]))
		if n < 4 || len(r.pending) < 1+n {
			return
		}
		typ, payload := r.pending[0], r.pending[5:1+n]
		r.pending = r.pending[1+n:]
		fn(typ, payload)
	}
}
