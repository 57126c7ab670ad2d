package clonehttp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

// A host application on SQLite with HS256 tokens: the first request of a new user
// creates its tenant and clone, handlers read the clone from the request context, and
// a request without a valid token gets a 401 problem.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "clonehttp-example")
	defer os.RemoveAll(dir)
	db, err := sqlitedb.Open(filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := migrate.Up(ctx, db, nil); err != nil {
		panic(err)
	}
	store, err := tenant.NewStore(db, nil)
	if err != nil {
		panic(err)
	}

	secret := []byte("example-secret-of-at-least-32-bytes!")
	auth, err := jwtauth.NewHMAC("https://auth.example.com", "clone-app", secret, nil)
	if err != nil {
		panic(err)
	}
	denials := &audit.Memory{}
	cache := clonehttp.NewCache(nil) // keep it to call InvalidateClone on suspension
	withClone := clonehttp.Middleware(auth, store, &clonehttp.Options{Audit: denials, Cache: cache})

	mux := http.NewServeMux()
	mux.Handle("GET /whoami", withClone(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		p := cc.Principal()
		fmt.Fprintf(w, "%s is %v of its clone", p.Subject, p.Roles)
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	// What the identity provider would issue.
	token, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://auth.example.com",
		"aud": "clone-app",
		"sub": "alice",
		"exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)

	call := func(token string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/whoami", nil)
		req.Header.Set("X-Request-Id", "req-1") // optional; kept beside the server's own ID
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), strings.TrimSpace(string(body)))
			return
		}
		var p clonehttp.Problem
		if err := json.Unmarshal(body, &p); err != nil {
			panic(err)
		}
		// request_id is the server's own (also in the X-Request-Id response header);
		// the client's ID is kept beside it.
		fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), p.Kind, p.Detail,
			"client_request_id:", p.ClientRequestID, "server ID in header:", p.RequestID == resp.Header.Get("X-Request-Id"))
	}
	call(token) // first sign-in: tenant and clone created
	call(token) // served from the cache
	call("")
	fmt.Println("denials audited:", len(denials.Events())-1) // minus the provisioning event
	// Output:
	// 200 text/plain; charset=utf-8 alice is [owner] of its clone
	// 200 text/plain; charset=utf-8 alice is [owner] of its clone
	// 401 application/problem+json unauthenticated The request lacks a valid bearer token. client_request_id: req-1 server ID in header: true
	// denials audited: 1
}
