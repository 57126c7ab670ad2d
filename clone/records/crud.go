package records

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// table is the one implementation of the create, get, update, delete, list and count
// shape shared by the top-level tables (insights, training examples, conversations; and
// documents, except their updates). Each table's SQL and validation stay in that
// table's file; table only runs them in the common order: begin (context and audit
// checks), scope, ID, validation, statement, audited not-found answer.
//
// T is the exported record, R its scan row (T plus the JSON columns as text).
type table[T any, R interface{ record() T }] struct {
	record string  // the record in errors and audit events, e.g. "insight"
	name   string  // the SQL table
	keys   *keyset // list and count queries
	// get selects one row by :id; insert stores :id, :metadata and :created_at (as both
	// timestamps) plus insertArgs; update sets :metadata and updated_at = :now of row
	// :id plus updateArgs, RETURNING the row.
	get, insert, update string
	// validate checks a payload and returns its metadata as JSON text.
	validate func(op string, v *T) (string, error)
	// fields gives the columns the shape itself reads and sets.
	fields func(v *T) common
	// insertArgs and updateArgs give the table's own named parameters.
	insertArgs, updateArgs func(v *T) map[string]any
}

// common points at the fields every table record has.
type common struct {
	TenantID, CloneID, ID *uuid.UUID
	Metadata              *json.RawMessage
	CreatedAt, UpdatedAt  *time.Time
}

func (t *table[T, R]) create(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, v T) (T, error) {
	var zero T
	f := t.fields(&v)
	if err := begin(ctx, q, cc, op); err != nil {
		return zero, err
	}
	if err := checkScope(ctx, q, cc, op, *f.TenantID, *f.CloneID); err != nil {
		return zero, err
	}
	meta, err := t.validate(op, &v)
	if err != nil {
		return zero, err
	}
	if *f.ID, err = newID(op, t.record+" ID", *f.ID); err != nil {
		return zero, err
	}
	*f.TenantID, *f.CloneID = cc.TenantID(), cc.CloneID()
	*f.CreatedAt = now()
	*f.UpdatedAt = *f.CreatedAt
	arg := t.insertArgs(&v)
	arg["id"], arg["metadata"], arg["created_at"] = *f.ID, meta, *f.CreatedAt
	if _, err = q.Exec(ctx, cc, t.insert, arg); err != nil {
		return zero, err
	}
	*f.Metadata = json.RawMessage(meta)
	return v, nil
}

func (t *table[T, R]) read(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, id uuid.UUID) (T, error) {
	var r R
	if err := getByID(ctx, q, cc, op, t.record, t.get, &r, id); err != nil {
		var zero T
		return zero, err
	}
	return r.record(), nil
}

func (t *table[T, R]) replace(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, v T) (T, error) {
	var zero T
	f := t.fields(&v)
	if err := begin(ctx, q, cc, op); err != nil {
		return zero, err
	}
	if err := checkScope(ctx, q, cc, op, *f.TenantID, *f.CloneID); err != nil {
		return zero, err
	}
	if err := checkID(op, t.record+" ID", *f.ID); err != nil {
		return zero, err
	}
	meta, err := t.validate(op, &v)
	if err != nil {
		return zero, err
	}
	arg := t.updateArgs(&v)
	arg["id"], arg["metadata"], arg["now"] = *f.ID, meta, now()
	var r R
	if err := found(ctx, q, cc, op, t.record, *f.ID, q.Get(ctx, cc, &r, t.update, arg)); err != nil {
		return zero, err
	}
	return r.record(), nil
}

func (t *table[T, R]) remove(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, id uuid.UUID) error {
	return deleteByID(ctx, q, cc, op, t.record, t.name, id)
}

func (t *table[T, R]) list(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string, opts *ListOptions) (Page[T], error) {
	if err := begin(ctx, q, cc, op); err != nil {
		return Page[T]{}, err
	}
	return listPage(ctx, q, cc, op, t.keys, uuid.Nil, opts, R.record, func(v T) (time.Time, uuid.UUID, int64) {
		f := t.fields(&v)
		return *f.CreatedAt, *f.ID, 0
	})
}

func (t *table[T, R]) count(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, op string) (int64, error) {
	if err := begin(ctx, q, cc, op); err != nil {
		return 0, err
	}
	return count(ctx, q, cc, t.keys, uuid.Nil)
}
