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
// group if the logger was derived with WithGroup. An attribute the record (or the
// logger, through With at the same level) already has is not added again, so no record
// has a key twice: an audit record of audit.SlogSink, which carries its event's own
// request_id, tenant_id and clone_id, keeps them.
func NewLogHandler(h slog.Handler) slog.Handler { return logHandler{h: h} }

type logHandler struct {
	h slog.Handler
	// has holds the keys added with WithAttrs at the current group level.
	has map[string]bool
}

// Enabled reports whether the wrapped handler handles level.
func (l logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return l.h.Enabled(ctx, level)
}

// Handle adds the request, tenant and clone IDs of ctx that r lacks and passes it on.
func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx == nil {
		return l.h.Handle(ctx, r)
	}
	var add []slog.Attr
	if rid := audit.RequestIDFrom(ctx); rid != "" {
		add = append(add, slog.String("request_id", rid))
	}
	if c := audit.ClientRequestIDFrom(ctx); c != "" {
		add = append(add, slog.String(audit.ClientRequestIDKey, c))
	}
	if cc, err := clone.FromContext(ctx); err == nil {
		add = append(add, slog.String("tenant_id", cc.TenantID().String()), slog.String("clone_id", cc.CloneID().String()))
	}
	if len(add) == 0 {
		return l.h.Handle(ctx, r)
	}
	have := func(key string) bool {
		if l.has[key] {
			return true
		}
		found := false
		r.Attrs(func(a slog.Attr) bool {
			found = a.Key == key
			return !found
		})
		return found
	}
	var missing []slog.Attr
	for _, a := range add {
		if !have(a.Key) {
			missing = append(missing, a)
		}
	}
	if len(missing) > 0 {
		r = r.Clone()
		r.AddAttrs(missing...)
	}
	return l.h.Handle(ctx, r)
}

// WithAttrs returns the wrapped handler with attrs, still adding the IDs it lacks.
func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := make(map[string]bool, len(l.has)+len(attrs))
	for k := range l.has {
		has[k] = true
	}
	for _, a := range attrs {
		has[a.Key] = true
	}
	return logHandler{h: l.h.WithAttrs(attrs), has: has}
}

// WithGroup returns the wrapped handler with a group, still adding the IDs (inside the
// group).
func (l logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return l
	}
	return logHandler{h: l.h.WithGroup(name)}
}
