package s3object_test

import (
	"context"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/drivertest"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

func TestConformance(t *testing.T) {
	env := s3test.Require(t)
	for _, mode := range []struct {
		name      string
		versioned bool
		scoped    bool
	}{{"Plain", false, false}, {"VersionedScoped", true, true}} {
		t.Run(mode.name, func(t *testing.T) {
			newDriver := func(t *testing.T, by time.Duration) driver.Bucket {
				bucket := s3test.NewBucket(t, env, mode.versioned)
				opts := &s3object.Options{Endpoint: env.Endpoint, UsePathStyle: true}
				if mode.scoped {
					opts.Scoped = &s3object.ScopedOptions{RoleARN: "arn:aws:iam::000000000000:role/cloneiso-test"}
				}
				if by != 0 {
					opts.Now = func() time.Time { return time.Now().Add(-by) }
				}
				d, err := s3object.OpenDriver(context.Background(), env.Config(), bucket, opts)
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			drivertest.Run(t, drivertest.Config{
				SignedURLs:         true,
				NewDriver:          func(t *testing.T) driver.Bucket { return newDriver(t, 0) },
				NewBackdatedDriver: newDriver,
			})
		})
	}
}
