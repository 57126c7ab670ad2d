package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// attack is one operation tried by the attacker against a victim.
type attack struct {
	layer, name string
	run         func(ctx context.Context, w *world, a, v *data) (string, error)
	// want lists the acceptable errors; okNil also accepts success (the result is then
	// searched for the victim's canaries). An empty want with okNil false means success
	// is required.
	want  []error
	okNil bool
	// only, if set, limits the attack to one stack (row-level security exists only on
	// PostgreSQL; on SQLite the statements and the result re-check stand alone).
	only stack
	// violation accepts clone.ErrIsolationViolation (HTTP 500): a re-check stopped a
	// foreign row the store returned.
	violation bool
}

var injections = []string{"'; DROP TABLE insights; --", "x' OR '1'='1", `") OR 1=1 --`, "' UNION SELECT content FROM insights --"}

// traversal returns object names that try to leave the attacker's prefix for the
// victim's.
func traversal(a, v *data) []string {
	vt, vc := v.cc.TenantID().String(), v.cc.CloneID().String()
	return []string{
		"../../" + vc + "/uploads/" + v.objectName,
		"../../../../" + vt + "/clones/" + vc + "/uploads/" + v.objectName,
		"%2e%2e/%2e%2e/" + vc + "/uploads/" + v.objectName,
		"..%2F..%2F" + vc + "%2Fuploads%2F" + v.objectName,
		"/tenants/" + vt + "/clones/" + vc + "/uploads/" + v.objectName,
		`..\..\` + vc + `\uploads\` + v.objectName,
		"ok/../../../" + vc + "/uploads/" + v.objectName,
		v.objectName + "\x00.txt",
		"./" + v.objectName,
		strings.Repeat("a/", 600) + v.objectName,
	}
}

func attacks(a, v *data) []attack {
	vt, vc := v.cc.TenantID(), v.cc.CloneID()
	nf := []error{clone.ErrNotFound}
	list := []attack{
		// SQL repositories.
		{layer: "sql", name: "get insight by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.GetInsight(ctx, w.db, a.cc, v.insight)
			return dump(r), err
		}},
		{layer: "sql", name: "update insight by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.UpdateInsight(ctx, w.db, a.cc, records.Insight{ID: v.insight, Content: "owned"})
			return dump(r), err
		}},
		{layer: "sql", name: "delete insight by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", records.DeleteInsight(ctx, w.db, a.cc, v.insight)
		}},
		{layer: "sql", name: "list insights", run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			p, err := records.ListInsights(ctx, w.db, a.cc, &records.ListOptions{Limit: records.MaxPageSize})
			return dump(p), err
		}},
		{layer: "sql", name: "create insight stamped with the victim's IDs", want: []error{clone.ErrCloneMismatch}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.CreateInsight(ctx, w.db, a.cc, records.Insight{TenantID: vt, CloneID: vc, Content: "planted"})
			return dump(r), err
		}},
		{layer: "sql", name: "get document by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.GetDocument(ctx, w.db, a.cc, v.doc)
			return dump(r), err
		}},
		{layer: "sql", name: "delete document by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", records.DeleteDocument(ctx, w.db, a.cc, v.doc)
		}},
		{layer: "sql", name: "get chunks by key", run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.GetChunks(ctx, w.db, a.cc, []records.ChunkKey{{DocumentID: v.doc}})
			return dump(r), err
		}},
		{layer: "sql", name: "list the victim document's chunks", want: nf, okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.ListDocumentChunks(ctx, w.db, a.cc, v.doc, nil)
			return dump(r), err
		}},
		{layer: "sql", name: "get conversation by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.GetConversation(ctx, w.db, a.cc, v.conv)
			return dump(r), err
		}},
		{layer: "sql", name: "append a message to the victim's conversation", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.AppendMessage(ctx, w.db, a.cc, records.Message{ConversationID: v.conv, Role: records.RoleUser, Content: "hi"})
			return dump(r), err
		}},
		{layer: "sql", name: "list the victim conversation's messages", want: nf, okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.ListMessages(ctx, w.db, a.cc, v.conv, nil)
			return dump(r), err
		}},
		{layer: "sql", name: "get message by ID", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := records.GetMessage(ctx, w.db, a.cc, v.msg)
			return dump(r), err
		}},
		{layer: "sql", name: "wrapper: caller-supplied clone_id", want: []error{clone.ErrCloneMismatch}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			var rows []string
			err := w.db.Select(ctx, a.cc, &rows, `SELECT content FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, map[string]any{"clone_id": vc})
			return dump(rows), err
		}},
		{layer: "sql", name: "wrapper: leaky OR in a scoped statement (re-check)", only: embedded, want: []error{clone.ErrIsolationViolation}, violation: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			var rows []records.Insight
			err := w.db.Select(ctx, a.cc, &rows, `SELECT tenant_id, clone_id, id, category, content, created_at, updated_at FROM insights
				WHERE (tenant_id = :tenant_id AND clone_id = :clone_id) OR id = :victim`, map[string]any{"victim": v.insight})
			return dump(rows), err
		}},
		{layer: "sql", name: "wrapper: leaky OR in a scoped statement (RLS)", only: production, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			var rows []string
			err := w.db.Select(ctx, a.cc, &rows, `SELECT content FROM insights WHERE (tenant_id = :tenant_id AND clone_id = :clone_id) OR id = :victim`, map[string]any{"victim": v.insight})
			return dump(rows), err
		}},
		{layer: "sql", name: "wrapper: unscoped statement", want: []error{clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			var rows []string
			err := w.db.Select(ctx, a.cc, &rows, `SELECT content FROM insights WHERE id = :id`, map[string]any{"id": v.insight})
			return dump(rows), err
		}},
		{layer: "sql", name: "raw SQL as the app role outside the wrapper (RLS fails closed)", only: production, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			var rows []string
			err := w.raw.SelectContext(ctx, &rows, `SELECT content FROM insights WHERE clone_id = $1 UNION ALL SELECT content FROM messages`, vc)
			return dump(rows), err
		}},
		{layer: "sql", name: "raw SQL inside A's scoped transaction naming the victim", only: production, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			tx, err := w.raw.BeginTxx(ctx, nil)
			if err != nil {
				return "", err
			}
			defer tx.Rollback()
			if _, err := w.db.Bind(ctx, tx.Tx, a.cc); err != nil {
				return "", err
			}
			var rows []string
			err = tx.SelectContext(ctx, &rows, `SELECT content FROM insights WHERE tenant_id = $1 AND clone_id = $2`, vt, vc)
			return dump(rows), err
		}},

		// Vector index.
		{layer: "vectors", name: "fetch the victim's IDs (colliding and unique)", run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.idx.Fetch(ctx, a.cc, []string{v.sharedVector, v.vectorID})
			return dump(r), err
		}},
		{layer: "vectors", name: "query with the victim's exact vector", run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.idx.Query(ctx, a.cc, vectorstore.Query{Vector: vec(v.canary), TopK: 100, IncludeMetadata: true})
			return dump(r), err
		}},
		{layer: "vectors", name: "filter naming the victim's clone_id", want: []error{clone.ErrCloneMismatch, clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.idx.Query(ctx, a.cc, vectorstore.Query{Vector: vec(v.canary), TopK: 10, IncludeMetadata: true, Filter: map[string]any{"clone_id": vc.String()}})
			return dump(r), err
		}},
		{layer: "vectors", name: "filter $or naming the victim's tenant and canary", want: []error{clone.ErrCloneMismatch, clone.ErrInvalidInput}, okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.idx.Query(ctx, a.cc, vectorstore.Query{Vector: vec(v.canary), TopK: 10, IncludeMetadata: true,
				Filter: map[string]any{"$or": []any{map[string]any{"tenant_id": vt.String()}, map[string]any{"text": v.canary}}}})
			return dump(r), err
		}},
		{layer: "vectors", name: "delete the victim's IDs", okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", w.idx.Delete(ctx, a.cc, []string{v.vectorID})
		}},
		{layer: "vectors", name: "delete by a filter on the victim's canary", okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", w.idx.DeleteByFilter(ctx, a.cc, map[string]any{"text": v.canary})
		}},
		{layer: "vectors", name: "list by the victim's ID prefix", run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.idx.List(ctx, a.cc, &vectorstore.ListOptions{Prefix: v.vectorID[:12]})
			return dump(r), err
		}},
		{layer: "vectors", name: "upsert metadata naming the victim's clone", want: []error{clone.ErrInvalidInput, clone.ErrCloneMismatch}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", w.idx.Upsert(ctx, a.cc, []vectorstore.Vector{{ID: "x", Values: vec("x"), Metadata: map[string]any{"clone_id": vc.String()}}})
		}},

		// Object store.
		{layer: "objects", name: "read the victim's object name", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			b, err := w.objects.ReadAll(ctx, a.cc, "uploads", v.objectName)
			return string(b), err
		}},
		{layer: "objects", name: "head the victim's object name", want: nf, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.objects.Head(ctx, a.cc, "uploads", v.objectName)
			return dump(r), err
		}},
		{layer: "objects", name: "list everything", run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			r, err := w.objects.List(ctx, a.cc, nil)
			if err != nil {
				return "", err
			}
			var names []string
			for _, o := range r.Objects {
				b, err := w.objects.ReadAll(ctx, a.cc, o.Kind, o.Name)
				if err != nil {
					return "", err
				}
				names = append(names, o.Name+"="+string(b))
			}
			return strings.Join(names, ","), nil
		}},
		{layer: "objects", name: "delete the victim's object name", want: nf, okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", w.objects.Delete(ctx, a.cc, "uploads", v.objectName)
		}},
	}
	for i, name := range traversal(a, v) {
		list = append(list,
			attack{layer: "objects", name: fmt.Sprintf("read traversal name #%d", i), want: []error{clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
				b, err := w.objects.ReadAll(ctx, a.cc, "uploads", name)
				return string(b), err
			}},
		)
	}
	tn := traversal(a, v)[0]
	list = append(list,
		attack{layer: "objects", name: "signed GET URL for a traversal name", want: []error{clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return w.objects.SignedURL(ctx, a.cc, "uploads", tn, &objectstore.SignedURLOptions{Method: http.MethodGet})
		}},
		attack{layer: "objects", name: "put through a traversal name", want: []error{clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			_, err := w.objects.Put(ctx, a.cc, "uploads", tn, strings.NewReader("overwrite"), nil)
			return "", err
		}},
		attack{layer: "objects", name: "copy from a traversal name", want: []error{clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", w.objects.Copy(ctx, a.cc, "uploads", tn, "uploads", "stolen.txt")
		}},
		attack{layer: "objects", name: "delete through a traversal name", want: []error{clone.ErrInvalidInput}, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			return "", w.objects.Delete(ctx, a.cc, "uploads", tn)
		}},
	)
	// Bad IDs: contexts built from the victim's IDs swapped or mixed with the
	// attacker's name no provisioned clone; nothing may be read or written through them.
	for _, bad := range []struct {
		name          string
		tenant, clone uuid.UUID
	}{
		{"swapped tenant and clone", vc, vt},
		{"attacker's tenant with the victim's clone", a.cc.TenantID(), vc},
		{"victim's tenant with the attacker's clone", vt, a.cc.CloneID()},
	} {
		if bad.tenant == a.cc.TenantID() && bad.clone == a.cc.CloneID() || bad.tenant == vt && bad.clone == vc {
			// The sibling shares A's tenant, so a mixed pair can be A itself or the
			// victim itself: a context is the authenticated identity, which the SDK
			// trusts (the middleware builds it); these pairs are not attacks on it.
			continue
		}
		list = append(list, attack{layer: "ids", name: "context of a " + bad.name + ": read and write", want: []error{clone.ErrNotFound, clone.ErrForbidden, clone.ErrConflict, clone.ErrSuspended},
			okNil: true, run: func(ctx context.Context, w *world, a, v *data) (string, error) {
				cc, err := clone.New(bad.tenant, bad.clone, a.cc.Principal())
				if err != nil {
					return "", err
				}
				var out strings.Builder
				p, err := records.ListInsights(ctx, w.db, cc, nil)
				out.WriteString(dump(p))
				if err != nil {
					return out.String(), err
				}
				vs, _ := w.idx.Fetch(ctx, cc, []string{v.sharedVector, v.vectorID})
				out.WriteString(dump(vs))
				if b, err := w.objects.ReadAll(ctx, cc, "uploads", v.objectName); err == nil {
					out.Write(b)
				}
				if _, err := records.CreateInsight(ctx, w.db, cc, records.Insight{Content: "ghost"}); err == nil {
					return out.String(), errors.New("a row was written for an unprovisioned clone")
				}
				if err := w.idx.Upsert(ctx, cc, []vectorstore.Vector{{ID: "ghost", Values: vec("ghost")}}); err == nil {
					return out.String(), errors.New("a vector was written for an unprovisioned clone")
				}
				if _, err := w.objects.Put(ctx, cc, "uploads", "ghost.txt", strings.NewReader("ghost"), nil); err == nil {
					return out.String(), errors.New("an object was written for an unprovisioned clone")
				}
				return out.String(), nil
			}})
	}
	for i, s := range injections {
		list = append(list, attack{layer: "sql", name: fmt.Sprintf("SQL injection in text fields #%d", i), run: func(ctx context.Context, w *world, a, v *data) (string, error) {
			in, err := records.CreateInsight(ctx, w.db, a.cc, records.Insight{Category: s, Content: s})
			if err != nil {
				return "", err
			}
			defer records.DeleteInsight(ctx, w.db, a.cc, in.ID)
			back, err := records.GetInsight(ctx, w.db, a.cc, in.ID)
			if err == nil && back.Content != s {
				err = fmt.Errorf("injection string altered: %q", back.Content)
			}
			return dump(back), err
		}})
	}
	return list
}

// noContext lists every kind of operation tried without a clone context.
func noContext() []attack {
	var zero clone.CloneContext
	want := []error{clone.ErrNoCloneContext}
	op := func(name string, f func(ctx context.Context, w *world) error) attack {
		return attack{layer: "no context", name: name, want: want, run: func(ctx context.Context, w *world, _, _ *data) (string, error) { return "", f(ctx, w) }}
	}
	return []attack{
		op("records.GetInsight", func(ctx context.Context, w *world) error {
			_, err := records.GetInsight(ctx, w.db, zero, w.a.insight)
			return err
		}),
		op("records.ListInsights", func(ctx context.Context, w *world) error {
			_, err := records.ListInsights(ctx, w.db, zero, nil)
			return err
		}),
		op("records.CreateInsight", func(ctx context.Context, w *world) error {
			_, err := records.CreateInsight(ctx, w.db, zero, records.Insight{Content: "x"})
			return err
		}),
		op("clonesql.Exec", func(ctx context.Context, w *world) error {
			_, err := w.db.Exec(ctx, zero, `DELETE FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil)
			return err
		}),
		op("vectorstore.Query", func(ctx context.Context, w *world) error {
			_, err := w.idx.Query(ctx, zero, vectorstore.Query{Vector: vec("x"), TopK: 1})
			return err
		}),
		op("vectorstore.Upsert", func(ctx context.Context, w *world) error {
			return w.idx.Upsert(ctx, zero, []vectorstore.Vector{{ID: "x", Values: vec("x")}})
		}),
		op("vectorstore.DeleteAll", func(ctx context.Context, w *world) error { return w.idx.DeleteAll(ctx, zero) }),
		op("objectstore.ReadAll", func(ctx context.Context, w *world) error {
			_, err := w.objects.ReadAll(ctx, zero, "uploads", w.a.objectName)
			return err
		}),
		op("objectstore.List", func(ctx context.Context, w *world) error {
			_, err := w.objects.List(ctx, zero, nil)
			return err
		}),
		op("objectstore.DeleteClone", func(ctx context.Context, w *world) error {
			_, err := w.objects.DeleteClone(ctx, zero)
			return err
		}),
	}
}

// TestAdversarial runs the matrix on every stack (the production drivers and the
// embedded ones): every attack as clone A against a clone of its own tenant and against
// another tenant's clone, every store without a context, and the HTTP middleware with
// its cache on and off.
func TestAdversarial(t *testing.T) {
	total, totalLeaks := 0, 0
	for _, st := range stacks {
		t.Run(string(st), func(t *testing.T) {
			cases, leaks := attackWorld(t, newWorld(t, st))
			total += cases
			totalLeaks += leaks
		})
	}
	t.Logf("adversarial: %d attack cases on %d stacks, %d leaks", total, len(stacks), totalLeaks)
}

func attackWorld(t *testing.T, w *world) (cases, leaks int) {
	ctx := context.Background()
	for _, v := range append([]*data{w.a}, w.victims...) {
		w.intact(t, v) // the data exists before the attacks
	}
	check := func(victim string, at attack, text string, err error) {
		cases++
		label := fmt.Sprintf("[%s] %s vs %s", at.layer, at.name, victim)
		errText := ""
		if err != nil {
			errText = err.Error()
		}
		if l := w.leaks(w.a, text+errText); len(l) > 0 {
			leaks++
			t.Errorf("LEAK: %s: saw %v in %.300s", label, l, text+errText)
		}
		switch {
		case err == nil && (len(at.want) == 0 || at.okNil):
		case err == nil:
			t.Errorf("%s: succeeded; want one of %v", label, at.want)
		case len(at.want) == 0:
			t.Errorf("%s: %v; want success", label, err)
		default:
			ok := false
			for _, want := range at.want {
				ok = ok || errors.Is(err, want)
			}
			if !ok {
				t.Errorf("%s: %v; want one of %v", label, err, at.want)
			}
			if clone.HTTPStatus(err) >= 500 && !(at.violation && errors.Is(err, clone.ErrIsolationViolation)) {
				t.Errorf("%s: maps to HTTP %d", label, clone.HTTPStatus(err))
			}
		}
	}
	for _, v := range w.victims {
		for _, at := range attacks(w.a, v) {
			if at.only != "" && at.only != w.stack.base() {
				continue
			}
			text, err := at.run(ctx, w, w.a, v)
			check(v.name, at, text, err)
		}
	}
	for _, at := range noContext() {
		text, err := at.run(ctx, w, w.a, nil)
		check("-", at, text, err)
	}
	for _, cached := range []bool{false, true} {
		httpCases, httpLeaks := runHTTPAttacks(t, w, cached)
		cases += httpCases
		leaks += httpLeaks
	}
	for _, v := range w.victims {
		w.intact(t, v) // nothing of the victims changed
	}
	t.Logf("%s: %d attack cases, %d leaks", w.stack, cases, leaks)
	if cases < 40 {
		t.Fatalf("only %d attack cases; the suite promises at least 40", cases)
	}
	return cases, leaks
}
