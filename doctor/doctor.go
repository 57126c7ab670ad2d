// Package doctor checks a deployment's wiring for the misconfigurations that would let
// one clone reach another's data, at start-up or from the command line
// (cmd/cloneiso-doctor):
//
//   - the database (through migrate.CheckIsolation), judged for the application role
//     and for every role it can act as through role membership — SET ROLE or inherited
//     privileges, directly or nested, on PostgreSQL 15 and newer: a superuser, a
//     BYPASSRLS, CREATEROLE or REPLICATION role, an owner of a clone-owned table, a
//     role that reads, writes or executes server files; a SECURITY DEFINER function
//     (any language, any body) the role can execute, or fire as a trigger on a table it
//     writes, whose owner is one of those, and likewise a view without
//     security_invoker or a materialized view it can read; a view without
//     security_invoker or a materialized view over a clone-owned table; a clone-owned
//     table without forced row-level security; a policy that admits rows with no clone
//     setting, calls a function per row or a VOLATILE one; a preset clone setting;
//   - the object store, through [objectstore.Bucket.CheckExposure]: anonymous listing
//     allowed, or a bucket policy that allows everyone (S3);
//   - the vector index, through [vectorstore.Index.ForeignNamespaces]: vectors in the
//     default namespace or in any namespace that is no clone's (every clone's vectors
//     must live in its own);
//   - the JWT configuration: issuer or audience not pinned.
//
// Each finding names its cause: the membership path and the privilege at its end
// ("role app is a member of cloneiso_owner (can SET ROLE, inherits its privileges),
// which owns table insights"), the object and its owner ("SECURITY DEFINER function
// peek() ... runs as its owner, and role postgres is a superuser; role app can EXECUTE
// it through PUBLIC"). Objects are judged by owner and privilege, never by their text:
// dynamic SQL hides the tables a body reads.
//
// Every check fails closed: when one cannot run to the end (a catalog query failing
// part-way, an S3 probe answered with anything but a refusal), [Check] returns an error,
// never a clean report. Each check runs only for the parts given in [Config]; the
// report lists every finding.
//
// The doctor takes the SDK's portable types (*sql.DB, *objectstore.Bucket,
// *vectorstore.Index) and the drivers do the vendor-specific probing, so importing it
// pulls in no vendor SDK; the command opens S3 and Pinecone with s3object and
// pineconevector. A store whose driver cannot be checked (the embedded filesystem and
// in-memory drivers) is listed in [Report.Unchecked], not silently passed.
package doctor

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// Finding codes of the non-database checks (database findings carry migrate's Problem
// codes).
const (
	BucketAnonymousList  = objectstore.ExposureAnonymousList // an unauthenticated client can list the bucket
	BucketPublicPolicy   = objectstore.ExposurePublicPolicy  // the bucket policy allows "*" (everyone)
	VectorsOutsideClones = "vectors-outside-clones"          // vectors stored outside any clone's namespace
	JWTIssuerNotPinned   = "jwt-issuer-not-pinned"
	JWTAudienceNotPinned = "jwt-audience-not-pinned"
	JWTIssuerNotHTTPS    = "jwt-issuer-not-https"
)

// Config names the parts of a deployment to check; nil or empty parts are skipped.
type Config struct {
	// DB is the application's own connection: its role is the one checked.
	DB *sql.DB
	// DBOptions tune the database check (extra clone-owned tables, schema).
	DBOptions *migrate.CheckOptions

	// Bucket is the object store cloneiso uses (e.g. from s3object.OpenBucket).
	Bucket *objectstore.Bucket

	// Index is the vector index cloneiso uses (e.g. from pineconevector.Open).
	Index *vectorstore.Index

	// CheckJWT turns on the JWT checks of JWTIssuer and JWTAudience, the values the
	// host's authenticator is configured with.
	CheckJWT               bool
	JWTIssuer, JWTAudience string
}

// Finding is one misconfiguration.
type Finding struct {
	Area   string // "database", "bucket", "vectors", "jwt"
	Code   string
	Detail string
}

func (f Finding) String() string { return f.Area + ": " + f.Code + ": " + f.Detail }

// Report lists the findings of [Check].
type Report struct {
	Checked   []string // the areas checked
	Unchecked []string // areas given but whose driver cannot be checked, with why
	Findings  []Finding
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

func (r *Report) String() string {
	if r.OK() {
		s := "no isolation problems found in: " + strings.Join(r.Checked, ", ")
		if len(r.Unchecked) > 0 {
			s += "; not checkable: " + strings.Join(r.Unchecked, ", ")
		}
		return s
	}
	lines := make([]string, len(r.Findings))
	for i, f := range r.Findings {
		lines[i] = f.String()
	}
	return strings.Join(lines, "\n")
}

// Check runs every check whose part is configured. An error means a check could not
// run (the report then holds what was found before it).
func Check(ctx context.Context, cfg *Config) (*Report, error) {
	const op = "doctor.Check"
	r := &Report{}
	add := func(area, code, format string, args ...any) {
		r.Findings = append(r.Findings, Finding{Area: area, Code: code, Detail: fmt.Sprintf(format, args...)})
	}
	if cfg.DB != nil {
		r.Checked = append(r.Checked, "database")
		rep, err := migrate.CheckIsolation(ctx, cfg.DB, cfg.DBOptions)
		if err != nil {
			return r, err
		}
		for _, p := range rep.Problems {
			detail := p.Detail
			switch {
			case p.Object != "":
				detail = p.Object + ": " + detail
			case p.Table != "":
				detail = p.Table + ": " + detail
			}
			add("database", p.Code, "%s", detail)
		}
	}
	if cfg.Bucket != nil {
		found, err := cfg.Bucket.CheckExposure(ctx)
		switch {
		case errors.Is(err, clone.ErrUnsupported):
			r.Unchecked = append(r.Unchecked, "bucket (its driver has no exposure check)")
		case err != nil:
			return r, errs.Wrap(errs.Unavailable, op, err, "object store exposure")
		default:
			r.Checked = append(r.Checked, "bucket")
			for _, e := range found {
				add("bucket", e.Code, "%s", e.Detail)
			}
		}
	}
	if cfg.Index != nil {
		foreign, err := cfg.Index.ForeignNamespaces(ctx)
		switch {
		case errors.Is(err, clone.ErrUnsupported):
			r.Unchecked = append(r.Unchecked, "vectors (its driver cannot enumerate namespaces)")
		case err != nil:
			return r, errs.Wrap(errs.Unavailable, op, err, "vector index namespaces")
		default:
			r.Checked = append(r.Checked, "vectors")
			names := slices.Sorted(maps.Keys(foreign))
			for _, ns := range names {
				shown := fmt.Sprintf("namespace %q", ns)
				if ns == "" || ns == "__default__" {
					shown = "the default namespace"
				}
				add("vectors", VectorsOutsideClones, "%d vectors in %s belong to no clone; move or delete them", foreign[ns], shown)
			}
		}
	}
	if cfg.CheckJWT {
		r.Checked = append(r.Checked, "jwt")
		switch iss := strings.TrimSpace(cfg.JWTIssuer); {
		case iss == "" || iss == "*":
			add("jwt", JWTIssuerNotPinned, "no issuer is required: tokens of any identity provider would be accepted")
		case !strings.HasPrefix(iss, "https://"):
			add("jwt", JWTIssuerNotHTTPS, "issuer %q is not an https URL: an identity provider's issuer is its https URL (OpenID Connect), "+
				"and a bare name is only safe for tokens the application mints itself with its own secret (as the host app's development mode does); "+
				"pin the provider's issuer URL", iss)
		}
		if aud := strings.TrimSpace(cfg.JWTAudience); aud == "" || aud == "*" {
			add("jwt", JWTAudienceNotPinned, "no audience is required: tokens minted for other applications would be accepted")
		}
	}
	return r, nil
}
