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
//   - the object bucket: anonymous listing allowed, or a bucket policy that allows
//     everyone;
//   - the Pinecone index: vectors in the default namespace (every clone's vectors
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
package doctor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
)

// Finding codes of the non-database checks (database findings carry migrate's Problem
// codes).
const (
	BucketAnonymousList  = "bucket-anonymous-list"      // an unauthenticated client can list the bucket
	BucketPublicPolicy   = "bucket-public-policy"       // the bucket policy allows "*" (everyone)
	PineconeDefaultNS    = "pinecone-default-namespace" // vectors stored outside any clone's namespace
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

	// S3 is a client for the object store and Bucket the bucket cloneiso uses.
	S3     *s3.Client
	Bucket string

	// Pinecone is a connection to the index cloneiso uses.
	Pinecone *pinecone.IndexConnection

	// CheckJWT turns on the JWT checks of JWTIssuer and JWTAudience, the values the
	// host's authenticator is configured with.
	CheckJWT               bool
	JWTIssuer, JWTAudience string
}

// Finding is one misconfiguration.
type Finding struct {
	Area   string // "database", "bucket", "pinecone", "jwt"
	Code   string
	Detail string
}

func (f Finding) String() string { return f.Area + ": " + f.Code + ": " + f.Detail }

// Report lists the findings of [Check].
type Report struct {
	Checked  []string // the areas checked
	Findings []Finding
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Findings) == 0 }

func (r *Report) String() string {
	if r.OK() {
		return "no isolation problems found in: " + strings.Join(r.Checked, ", ")
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
	if cfg.S3 != nil && cfg.Bucket != "" {
		r.Checked = append(r.Checked, "bucket")
		if err := checkBucket(ctx, cfg.S3, cfg.Bucket, add); err != nil {
			return r, errs.Wrap(errs.Unavailable, op, err, "bucket %s", cfg.Bucket)
		}
	}
	if cfg.Pinecone != nil {
		r.Checked = append(r.Checked, "pinecone")
		st, err := cfg.Pinecone.DescribeIndexStats(ctx)
		if err != nil {
			return r, errs.Wrap(errs.Unavailable, op, err, "pinecone index stats")
		}
		for ns, s := range st.Namespaces {
			if (ns == "" || ns == "__default__") && s != nil && s.VectorCount > 0 {
				add("pinecone", PineconeDefaultNS, "%d vectors in the default namespace belong to no clone; move or delete them", s.VectorCount)
			}
		}
	}
	if cfg.CheckJWT {
		r.Checked = append(r.Checked, "jwt")
		switch iss := strings.TrimSpace(cfg.JWTIssuer); {
		case iss == "" || iss == "*":
			add("jwt", JWTIssuerNotPinned, "no issuer is required: tokens of any identity provider would be accepted")
		case !strings.HasPrefix(iss, "https://"):
			add("jwt", JWTIssuerNotHTTPS, "issuer %q is not an https URL", iss)
		}
		if aud := strings.TrimSpace(cfg.JWTAudience); aud == "" || aud == "*" {
			add("jwt", JWTAudienceNotPinned, "no audience is required: tokens minted for other applications would be accepted")
		}
	}
	return r, nil
}

// checkBucket tries to list the bucket without credentials and reads its policy. The
// anonymous listing must be refused (HTTP 401 or 403): any other failure means the
// probe proved nothing, and is an error rather than a pass.
func checkBucket(ctx context.Context, c *s3.Client, bucket string, add func(area, code, format string, args ...any)) error {
	anon := s3.New(c.Options(), func(o *s3.Options) { o.Credentials = aws.AnonymousCredentials{} })
	_, err := anon.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
	var re *smithyhttp.ResponseError
	switch {
	case err == nil:
		add("bucket", BucketAnonymousList, "anyone can list bucket %s without credentials", bucket)
	case errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusForbidden || re.HTTPStatusCode() == http.StatusUnauthorized):
		// Refused: as it should be.
	default:
		return fmt.Errorf("anonymous listing probe was neither allowed nor refused: %w", err)
	}
	out, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(bucket)})
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchBucketPolicy" || ae.ErrorCode() == "NotImplemented") {
		return nil
	}
	if err != nil {
		return err
	}
	var policy struct {
		Statement []struct {
			Effect    string
			Principal any
			Action    any
			Condition map[string]any
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &policy); err != nil {
		return fmt.Errorf("parse bucket policy: %w", err)
	}
	for _, st := range policy.Statement {
		if strings.EqualFold(st.Effect, "Allow") && everyone(st.Principal) && len(st.Condition) == 0 {
			add("bucket", BucketPublicPolicy, "bucket %s's policy allows %v to everyone without conditions", bucket, st.Action)
		}
	}
	return nil
}

// everyone reports whether a policy principal is "*" in any of its spellings.
func everyone(p any) bool {
	switch v := p.(type) {
	case string:
		return v == "*"
	case []any:
		for _, x := range v {
			if everyone(x) {
				return true
			}
		}
	case map[string]any:
		for _, x := range v {
			if everyone(x) {
				return true
			}
		}
	}
	return false
}
