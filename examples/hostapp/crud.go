package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
)

// serverOwned are the record fields the server sets: from the clone context (tenant_id,
// clone_id), the path or a new random value (id), a legacy migration (user_id) or the
// database (timestamps). A body that sets one is refused rather than silently ignored.
var serverOwned = []string{"id", "tenant_id", "clone_id", "user_id", "created_at", "updated_at"}

// decodeRecord is decode for a record of package records, refusing server-owned fields
// (matched as encoding/json matches names: without regard to case).
func decodeRecord(r *http.Request, v any) error {
	var fields map[string]json.RawMessage
	if err := decode(r, &fields); err != nil {
		return err
	}
	for name := range fields {
		for _, owned := range serverOwned {
			if strings.EqualFold(name, owned) {
				return badRequest("field %q is set by the server, not by the request", owned)
			}
		}
	}
	raw, err := json.Marshal(fields)
	if err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

// crud registers create, list, get, update and delete routes under prefix for one
// record type of package records. The repository functions bind the tenant and clone
// from the context; setID puts the path's ID into an update.
func crud[T any](mux *http.ServeMux, a *App, prefix string,
	create func(context.Context, clonesql.Querier, clone.CloneContext, T) (T, error),
	list func(context.Context, clonesql.Querier, clone.CloneContext, *records.ListOptions) (records.Page[T], error),
	get func(context.Context, clonesql.Querier, clone.CloneContext, uuid.UUID) (T, error),
	update func(context.Context, clonesql.Querier, clone.CloneContext, T) (T, error),
	del func(context.Context, clonesql.Querier, clone.CloneContext, uuid.UUID) error,
	setID func(*T, uuid.UUID),
) {
	mux.HandleFunc("POST "+prefix, a.handle(func(r *http.Request, cc clone.CloneContext) (int, any, error) {
		var v T
		if err := decodeRecord(r, &v); err != nil {
			return 0, nil, err
		}
		v, err := create(r.Context(), a.db, cc, v)
		return http.StatusCreated, v, err
	}))
	mux.HandleFunc("GET "+prefix, a.handle(func(r *http.Request, cc clone.CloneContext) (int, any, error) {
		o, err := listOptions(r)
		if err != nil {
			return 0, nil, err
		}
		page, err := list(r.Context(), a.db, cc, o)
		return http.StatusOK, page, err
	}))
	mux.HandleFunc("GET "+prefix+"/{id}", a.handle(func(r *http.Request, cc clone.CloneContext) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, err
		}
		v, err := get(r.Context(), a.db, cc, id)
		return http.StatusOK, v, err
	}))
	mux.HandleFunc("PUT "+prefix+"/{id}", a.handle(func(r *http.Request, cc clone.CloneContext) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, err
		}
		var v T
		if err := decodeRecord(r, &v); err != nil {
			return 0, nil, err
		}
		setID(&v, id)
		v, err = update(r.Context(), a.db, cc, v)
		return http.StatusOK, v, err
	}))
	mux.HandleFunc("DELETE "+prefix+"/{id}", a.handle(func(r *http.Request, cc clone.CloneContext) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusNoContent, nil, del(r.Context(), a.db, cc, id)
	}))
}
