package legacy_test

import (
	"os"
	"testing"

	"github.com/cloneiso/cloneiso/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
