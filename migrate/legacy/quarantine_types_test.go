package legacy_test

import (
	"context"
	"testing"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// typedSQL is a host table with the column types a legacy deployment has, and rows of a
// deleted user (u999) with values whose text form a careless round trip would change:
// json with its own spacing and key order, floats, bytea, timestamps with and without
// a zone, intervals, arrays, NFD text.
const typedSQL = `
CREATE TABLE typed (
    id bigserial PRIMARY KEY, user_id text, f8 float8, f4 real, b bytea, ts timestamp, tz timestamptz,
    n numeric, a integer[], j json, jb jsonb, t text, iv interval, d date, c char(5), v varchar(10)
);
INSERT INTO typed (user_id, f8, f4, b, ts, tz, n, a, j, jb, t, iv, d, c, v) VALUES
  ('u999', 0.1, 0.3, '\x00ff10', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.123456+05:30', 1.50, '{1,NULL,3}',
   '{"b": 1,   "a" : [1, 2]}', '{"b": 1, "a": [1, 2]}', E'Cafe\u0301 \t "quoted"', '1 day 02:03:04.5', '2024-01-31', 'ab', 'xyz'),
  ('u999', -1e300, 'NaN', '', '1999-12-31 00:00:00', '1970-01-01 00:00:00+00', -0.000001, '{}',
   '[]', 'null', '', '-3 months', '0001-01-01', NULL, NULL),
  ('u001', 2.5, 1, '\x01', '2024-01-01', '2024-01-01 00:00:00+00', 0, '{1}', '{}', '{}', 'plain', '0', '2024-01-01', 'x', 'y');
`

// TestQuarantineKeepsRowsExactly: rows set aside and counted by verify keep every value
// exactly (the checksums of the snapshot still match), and restored rows equal the
// originals column by column.
func TestQuarantineKeepsRowsExactly(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(typedSQL)
	db.Owner.MustExec("CREATE TABLE typed_before AS SELECT * FROM typed")
	cfg := legacytest.Config()
	cfg.Tables = append(cfg.Tables, legacy.Table{Name: "typed"})
	cfg.UserDecisions = map[string]legacy.UserDecision{"u999": {Action: legacy.DecisionQuarantine}}
	cfg.WithoutUser = legacy.DecisionDrop
	m, err := legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustAdopt(t, m)
	rep, err := m.Backfill(ctx, nil)
	if err != nil || rep.Quarantined["typed"] != 2 {
		t.Fatalf("backfill: %v, %v", rep, err)
	}
	if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify with typed rows set aside: %v\n%s", err, vr)
	}
	if _, err := m.RestoreQuarantined(ctx, []string{"u999"}); err != nil {
		t.Fatal(err)
	}
	const diff = `SELECT count(*) FROM (
		(SELECT id, user_id, f8, f4, b, ts, tz, n, a, j::text, jb, t, iv, d, c, v FROM typed_before
		 EXCEPT SELECT id, user_id, f8, f4, b, ts, tz, n, a, j::text, jb, t, iv, d, c, v FROM typed)
		UNION ALL
		(SELECT id, user_id, f8, f4, b, ts, tz, n, a, j::text, jb, t, iv, d, c, v FROM typed
		 EXCEPT SELECT id, user_id, f8, f4, b, ts, tz, n, a, j::text, jb, t, iv, d, c, v FROM typed_before)) _d`
	if n := count(t, db, diff); n != 0 {
		t.Fatalf("%d restored rows differ from the originals", n)
	}
}
