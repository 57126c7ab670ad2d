// Command hostapp is a host HTTP application on cloneiso: every request is bound to
// one clone by the clonehttp middleware, and each clone has its own documents (uploaded
// as multipart or through an upload ticket, listed, fetched, deleted, downloaded through
// a signed link), insights, training examples, conversations with a streaming chat, and
// an inventory of what it stores.
//
// With no configuration it runs on the embedded defaults in ./cloneiso-data (SQLite,
// files on disk served through signed links, an embedded vector index, a local embedder
// and an extractive generator). Development mode hands out tokens to anyone:
//
//	go run ./examples/hostapp -dev
//	TOKEN=$(curl -s 'http://127.0.0.1:8080/dev/token?sub=alice')
//	curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/v1/me
//
// Environment variables switch each part to PostgreSQL, S3 (or MinIO), Pinecone and an
// OpenAI-compatible API; see Config and the README's configuration reference.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cloneiso/cloneiso/clone/clonehttp"
)

func main() {
	dev := flag.Bool("dev", false, "development mode: GET /dev/token?sub=NAME mints tokens for anyone")
	flag.Parse()
	log := slog.New(clonehttp.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := configFromEnv()
	if err == nil {
		cfg.Dev = cfg.Dev || *dev
		err = run(ctx, cfg, log)
	}
	if err != nil {
		log.Error("hostapp stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx is done (SIGINT or SIGTERM), then stops accepting requests, lets
// those in flight finish (up to 30 s) and closes the stores.
func run(ctx context.Context, cfg Config, log *slog.Logger) (err error) {
	app, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, app.Close()) }()

	// Repair every clone in the background (bounded by RepairTimeout), stopped and
	// waited for at shutdown before the stores close.
	repairCtx, stopRepair := context.WithCancel(ctx)
	repaired := make(chan struct{})
	go func() {
		defer close(repaired)
		if err := app.repairAll(repairCtx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("start-up repair", "err", err)
		}
	}()
	defer func() { stopRepair(); <-repaired }()

	srv := &http.Server{Addr: cfg.Addr, Handler: app.Handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("hostapp listening", "addr", cfg.Addr, "public_url", app.cfg.PublicURL, "data_dir", cfg.DataDir,
		"backends", app.backends)
	if cfg.Dev {
		// One record like every other line of the log, not text inside the JSON stream.
		log.Warn("DEVELOPMENT MODE: /dev/token mints a valid token for any subject; never expose this server",
			"get_token", fmt.Sprintf("TOKEN=$(curl -s '%s/dev/token?sub=alice')", app.cfg.PublicURL),
			"use_token", fmt.Sprintf(`curl -H "Authorization: Bearer $TOKEN" %s/v1/me`, app.cfg.PublicURL))
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
