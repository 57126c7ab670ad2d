// Command quickstart shows cloneiso on its embedded defaults (no server needed): it
// migrates a SQLite database in a temporary directory, signs in two people for the
// first time (each gets a tenant and a clone), and shows that a request carrying one
// clone's context is refused when it names the other clone.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "cloneiso-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	db, err := clonesql.OpenSQLite(filepath.Join(dir, "cloneiso.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate.Up(ctx, db.DB, nil); err != nil {
		return err
	}
	tenants, err := tenant.NewStore(db)
	if err != nil {
		return err
	}

	// First sign-in of two solopreneurs: each gets a tenant and a clone.
	alice, created, err := tenants.ProvisionSolo(ctx, "alice@example.com")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "alice signed up (new: %v): %s\n", created, alice)
	bob, _, err := tenants.ProvisionSolo(ctx, "bob@example.com")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "bob signed up: %s\n", bob)

	// Signing in again returns the same clone.
	again, created, err := tenants.ProvisionSolo(ctx, "alice@example.com")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "alice signed in again (new: %v), same clone: %v\n", created, again.Same(alice))

	// A request authenticated as alice that names bob's clone is refused.
	reqCtx := clone.WithContext(ctx, alice)
	cc, err := clone.FromContext(reqCtx)
	if err != nil {
		return err
	}
	err = cc.CheckStrings(bob.TenantID().String(), bob.CloneID().String())
	fmt.Fprintf(out, "alice asking for bob's clone: %v (HTTP %d)\n", err, clone.HTTPStatus(err))
	if err == nil {
		return fmt.Errorf("isolation failure: alice reached bob's clone")
	}
	return nil
}
