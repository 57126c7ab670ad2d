// Command pinecone-emulator serves one or more emulated Pinecone indexes (package
// pineconetest) over gRPC, so that tests in any language can use them as they would use
// Pinecone Local.
//
// Usage:
//
//	pinecone-emulator -index 'name=docs,addr=127.0.0.1:5081,dimension=384' \
//	                  -index 'name=pods,addr=[::1]:5082,dimension=8,metric=dotproduct,kind=pod'
//
// Each -index is a comma-separated list of key=value settings:
//
//	name          a label for the logs (default index-N)
//	addr          TCP address to listen on (default 127.0.0.1:0, a free port); IPv4 or
//	              IPv6 ("[::1]:5081"), fixed port or 0
//	dimension     the vector dimension (required), 1..20000
//	metric        cosine (default), dotproduct or euclidean
//	kind          serverless (default) or pod
//	api-key       if set, requests must carry it in the Api-Key header
//	lag-requests  eventual consistency: a write becomes visible to queries, listings
//	              and stats after this many further requests
//	lag           eventual consistency: ... and after this much time (e.g. 200ms)
//	lag-fetch     true: fetch by ID lags too
//
// When every index listens, the command prints one line per index to standard output:
//
//	ready name=docs host=http://127.0.0.1:5081 dimension=384 metric=cosine kind=serverless
//
// (the host to give a Pinecone client: plaintext gRPC on that address), then serves
// until it receives SIGINT or SIGTERM, and exits 0. Configuration errors exit 2.
//
// It serves Pinecone's gRPC data plane (VectorService, as go-pinecone v5 and
// Pinecone's other gRPC clients speak it: upsert, query, fetch, delete, list, update,
// stats, namespaces, fetch by metadata) with the semantics and limits documented in
// package pineconetest. It does not serve the REST data plane or the control plane
// (create/describe index): point a client at the printed host directly.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, stop))
}

// indexFlags collects repeated -index flags.
type indexFlags []string

func (f *indexFlags) String() string     { return strings.Join(*f, " ") }
func (f *indexFlags) Set(v string) error { *f = append(*f, v); return nil }

// spec is one parsed -index.
type spec struct {
	name string
	opts pineconetest.Options
}

// parseSpec parses "key=value,key=value".
func parseSpec(s string, n int) (*spec, error) {
	sp := &spec{name: fmt.Sprintf("index-%d", n)}
	var lag pineconetest.Lag
	lagged := false
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		switch k {
		case "name":
			sp.name = v
		case "addr":
			sp.opts.Addr = v
		case "dimension", "dim":
			d, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("dimension %q: not a number", v)
			}
			sp.opts.Dimension = d
		case "metric":
			sp.opts.Metric = v
		case "kind":
			sp.opts.Kind = v
		case "api-key":
			sp.opts.APIKey = v
		case "lag-requests":
			r, err := strconv.Atoi(v)
			if err != nil || r < 0 {
				return nil, fmt.Errorf("lag-requests %q: want a number of requests", v)
			}
			lag.Requests, lagged = r, true
		case "lag":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return nil, fmt.Errorf("lag %q: want a duration such as 200ms", v)
			}
			lag.Duration, lagged = d, true
		case "lag-fetch":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("lag-fetch %q: want true or false", v)
			}
			lag.Fetch = b
		default:
			return nil, fmt.Errorf("unknown setting %q", k)
		}
	}
	if sp.opts.Dimension == 0 {
		return nil, fmt.Errorf("dimension is required")
	}
	if lagged || lag.Fetch {
		sp.opts.Lag = &lag
	}
	return sp, nil
}

// run is the command; it returns the exit status once stop receives a signal.
func run(args []string, stdout, stderr io.Writer, stop <-chan os.Signal) int {
	fs := flag.NewFlagSet("pinecone-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var indexes indexFlags
	fs.Var(&indexes, "index", "an index to serve: name=N,addr=HOST:PORT,dimension=D[,metric=M][,kind=serverless|pod][,api-key=K][,lag-requests=R][,lag=DURATION][,lag-fetch=BOOL] (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pinecone-emulator -index 'name=docs,addr=127.0.0.1:5081,dimension=384' [-index ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || len(indexes) == 0 {
		fs.Usage()
		return 2
	}
	var servers []*pineconetest.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	var ready []string
	for i, raw := range indexes {
		sp, err := parseSpec(raw, i+1)
		if err != nil {
			fmt.Fprintf(stderr, "pinecone-emulator: -index %q: %v\n", raw, err)
			return 2
		}
		srv, err := pineconetest.NewServer(&sp.opts)
		if err != nil {
			fmt.Fprintf(stderr, "pinecone-emulator: -index %q: %v\n", raw, err)
			return 2
		}
		servers = append(servers, srv)
		metric := sp.opts.Metric
		if metric == "" {
			metric = "cosine"
		}
		ready = append(ready, fmt.Sprintf("ready name=%s host=%s dimension=%d metric=%s kind=%s", sp.name, srv.Host(), sp.opts.Dimension, metric, srv.Kind()))
	}
	// Only once every index listens: a caller may start using the first at once.
	for _, line := range ready {
		fmt.Fprintln(stdout, line)
	}
	<-stop
	fmt.Fprintln(stderr, "pinecone-emulator: stopping")
	return 0
}
