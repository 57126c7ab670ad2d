package clonehttp

import (
	"context"
	"log/slog"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
)

// NewLogHandler wraps h so that every record logged with a context (InfoContext,
// LogAttrs, ...) gets the request_id (the server's), client_request_id (the client's,
// if it sent a well-formed one), tenant_id and clone_id of that context, as set by
// [Middleware]. Handlers then log with their request's context and need not repeat the
// IDs:
//
//	logger := slog.New(clonehttp.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
//	logger.InfoContext(r.Context(), "document uploaded", "bytes", n)
//
// The attributes are added at the top level of the record, or inside the innermost
// group if the logger was derived with WithGroup.
func NewLogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ h slog.Handler }

// Enabled reports whether the wrapped handler handles level.
func (l logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

// Handle adds the request, tenant and clone IDs of ctx to r and passes it on.
func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if rid := audit.RequestIDFrom(ctx); rid != "" {
			r.AddAttrs(slog.String("request_id", rid))
		}
		if c := audit.ClientRequestIDFrom(ctx); c != "" {
			r.AddAttrs(slog.String(audit.ClientRequestIDKey, c))
		}
		if cc, err := clone.FromContext(ctx); err == nil {
			r.AddAttrs(slog.String("tenant_id", cc.TenantID().String()), slog.String("clone_id", cc.CloneID().String()))
		}
	}
	return l.h.Handle(ctx, r)
}

// WithAttrs returns the wrapped handler with attrs, still adding the IDs.
func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.h.WithAttrs(attrs)}
}

// WithGroup returns the wrapped handler with a group, still adding the IDs.
func (l logHandler) WithGroup(name string) slog.Handler { return logHandler{l.h.WithGroup(name)} }
