package adversarial_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/objectstore"
	odriver "github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore"
	vdriver "github.com/cloneiso/cloneiso/vectorstore/driver"
)

// TestMechanisms checks every isolation layer on its own, below the other layers, so
// that switching one off is detected even where the others would still stop a leak, on
// both stacks (the production drivers and the embedded ones). Expected values are
// computed here from the documented formats, never by calling the code under test.
func TestMechanisms(t *testing.T) {
	for _, st := range stacks {
		t.Run(string(st), func(t *testing.T) { mechanisms(t, newWorld(t, st)) })
	}
}

func mechanisms(t *testing.T, w *world) {
	ctx := context.Background()
	nsOf := func(d *data) string { return "t-" + d.cc.TenantID().String() + "-c-" + d.cc.CloneID().String() }
	prefixOf := func(d *data) string {
		return "tenants/" + d.cc.TenantID().String() + "/clones/" + d.cc.CloneID().String() + "/"
	}

	if w.stack.base() == production {
		t.Run("transaction-local settings on a pooled connection", func(t *testing.T) {
			open := clonesql.OpenPostgres // the probe uses the stack's own driver: pgx sets the scope in its own pipeline
			if w.stack == productionPgx {
				open = clonesql.OpenPgx
			}
			raw, err := open(w.pg.AppURL)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetMaxOpenConns(1)
			db, _ := clonesql.New(raw, nil)
			if n, err := records.CountInsights(ctx, db, w.a.cc); err != nil || n == 0 {
				t.Fatalf("A's insights through the wrapper: %d, %v", n, err)
			}
			var setting sql.NullString
			var visible int
			if err := raw.QueryRowContext(ctx, `SELECT current_setting('cloneiso.clone_id', true), (SELECT count(*) FROM insights)`).Scan(&setting, &visible); err != nil {
				t.Fatal(err)
			}
			if setting.String != "" || visible != 0 {
				t.Errorf("LEAK: after A's operation the pooled connection carries clone %q and sees %d rows", setting.String, visible)
			}
		})
	}

	t.Run("one namespace per clone in the raw vector backend", func(t *testing.T) {
		for _, d := range []*data{w.a, w.sib, w.other} {
			var n int
			if w.stack.base() == production {
				n = w.srv.Namespaces()[nsOf(d)]
			} else {
				st, err := w.rawVec.Stats(ctx, nsOf(d))
				if err != nil {
					t.Fatal(err)
				}
				n = st.VectorCount
			}
			if n != 2 {
				t.Errorf("LEAK: namespace %s holds %d vectors; want exactly the clone's 2", nsOf(d), n)
			}
		}
	})

	t.Run("one key prefix per clone in the raw bucket", func(t *testing.T) {
		for _, d := range []*data{w.a, w.sib, w.other} {
			var keys []string
			if w.stack.base() == production {
				out, err := w.s3env.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(w.bucket), Prefix: aws.String(prefixOf(d))})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out.Contents {
					keys = append(keys, aws.ToString(o.Key))
				}
			} else {
				page, err := w.rawObj.List(ctx, prefixOf(d), prefixOf(d), 1000, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Objects {
					keys = append(keys, o.Key)
				}
			}
			if len(keys) != 2 {
				t.Errorf("LEAK: prefix %s holds %d objects %v; want exactly the clone's 2", prefixOf(d), len(keys), keys)
			}
		}
	})

	// Plant the victim's data inside A's own namespace and prefix, as a bug below the
	// SDK (or an attacker with backend access) would: the result re-checks must refuse
	// to return it, and the vector scope filter must keep it out of queries.
	victim := w.other
	values := vec("planted")
	vmd := map[string]any{vectorstore.TenantKey: victim.cc.TenantID().String(), vectorstore.CloneKey: victim.cc.CloneID().String(), "text": victim.canary}
	omd := map[string]string{objectstore.MetaTenantID: victim.cc.TenantID().String(), objectstore.MetaCloneID: victim.cc.CloneID().String()}
	if w.stack.base() == production {
		var conn *pinecone.IndexConnection
		if !w.idx.As(&conn) {
			t.Fatal("no go-pinecone connection behind the index")
		}
		md, _ := structpb.NewStruct(vmd)
		if _, err := conn.WithNamespace(nsOf(w.a)).UpsertVectors(ctx, []*pinecone.Vector{{Id: "planted", Values: &values, Metadata: md}}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.s3env.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(w.bucket), Key: aws.String(prefixOf(w.a) + "uploads/planted.txt"),
			Body: bytes.NewReader([]byte(victim.canary)), Metadata: omd}); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := w.rawVec.Upsert(ctx, nsOf(w.a), []vdriver.Vector{{ID: "planted", Values: values, Metadata: vmd}}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.rawObj.Put(ctx, prefixOf(w.a), prefixOf(w.a)+"uploads/planted.txt", bytes.NewReader([]byte(victim.canary)), &odriver.WriteOptions{Metadata: omd}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("vector re-check refuses a planted foreign vector", func(t *testing.T) {
		vs, err := w.idx.Fetch(ctx, w.a.cc, []string{"planted"})
		if l := w.leaks(w.a, dump(vs)); len(l) > 0 {
			t.Errorf("LEAK: fetched %v", l)
		}
		if !errors.Is(err, clone.ErrIsolationViolation) {
			t.Errorf("fetch of a planted foreign vector: %v; want ErrIsolationViolation", err)
		}
	})
	t.Run("vector scope filter keeps a planted foreign vector out of queries", func(t *testing.T) {
		ms, err := w.idx.Query(ctx, w.a.cc, vectorstore.Query{Vector: values, TopK: 10, IncludeMetadata: true})
		if l := w.leaks(w.a, dump(ms)); len(l) > 0 {
			t.Errorf("LEAK: query returned %v", l)
		}
		if err != nil || len(ms) != 2 {
			t.Errorf("query next to a planted vector: %d matches, %v; want A's 2 and no error (the filter, not the re-check, must exclude it)", len(ms), err)
		}
	})
	t.Run("object owner re-check refuses a planted foreign object", func(t *testing.T) {
		b, err := w.objects.ReadAll(ctx, w.a.cc, "uploads", "planted.txt")
		if l := w.leaks(w.a, string(b)); len(l) > 0 {
			t.Errorf("LEAK: read %v", l)
		}
		if !errors.Is(err, clone.ErrIsolationViolation) {
			t.Errorf("read of a planted foreign object: %v; want ErrIsolationViolation", err)
		}
	})
	t.Run("SQL re-check refuses a foreign row that got past the database", func(t *testing.T) {
		q := w.db // SQLite: no row-level security, the statement alone decides
		if w.stack.base() == production {
			var err error
			if q, err = clonesql.New(w.pg.Owner.DB, nil); err != nil { // a superuser: RLS does not apply
				t.Fatal(err)
			}
		}
		var rows []records.Insight
		err := q.Select(ctx, w.a.cc, &rows, `SELECT tenant_id, clone_id, id, category, content, created_at, updated_at FROM insights
			WHERE (tenant_id = :tenant_id AND clone_id = :clone_id) OR id = :victim`, map[string]any{"victim": victim.insight})
		if l := w.leaks(w.a, dump(rows)); len(l) > 0 {
			t.Errorf("LEAK: selected %v", l)
		}
		if !errors.Is(err, clone.ErrIsolationViolation) {
			t.Errorf("a foreign row through a leaky statement: %v; want ErrIsolationViolation", err)
		}
	})
}
