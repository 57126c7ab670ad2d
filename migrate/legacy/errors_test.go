package legacy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// TestErrorKinds: the migration's errors are classified like the rest of the SDK's — a
// cancelled context is Canceled, a role the database refuses is Internal (a
// misconfiguration, not "retry later") — and ErrIncomplete is a Conflict.
func TestErrorKinds(t *testing.T) {
	if k := clone.KindOf(legacy.ErrIncomplete); k != clone.ErrConflict {
		t.Fatalf("KindOf(ErrIncomplete) = %v; want conflict", k)
	}
	db := freshDB(t)
	ctx := context.Background()
	if err := legacytest.Create(ctx, db.Owner, 1); err != nil {
		t.Fatal(err)
	}
	m := newMigrator(t, db, 100, nil)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Status(cancelled); clone.KindOf(err) != clone.ErrCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("Status(cancelled) = %v (kind %v); want canceled", err, clone.KindOf(err))
	}

	// The application role may not create the bookkeeping tables: adoption fails as a
	// misconfiguration.
	cfg := legacytest.Config()
	app, err := legacy.New(db.App.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Adopt(ctx); clone.KindOf(err) != clone.ErrInternal {
		t.Fatalf("Adopt as the app role = %v (kind %v); want internal", err, clone.KindOf(err))
	}
}
