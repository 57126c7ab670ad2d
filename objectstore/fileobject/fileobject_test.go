package fileobject_test

import (
	"net/http/httptest"
	"testing"

	"github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/drivertest"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Config{
		SignedURLs: true,
		NewDriver: func(t *testing.T) driver.Bucket {
			dir := t.TempDir()
			key := []byte("0123456789abcdef0123456789abcdef")
			srv := httptest.NewUnstartedServer(nil)
			opts := &fileobject.Options{SigningKey: key, BaseURL: "http://" + srv.Listener.Addr().String() + "/files"}
			h, err := fileobject.NewHandler(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			srv.Config.Handler = h
			srv.Start()
			t.Cleanup(srv.Close)
			d, err := fileobject.OpenDriver(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	})
}
