package pgtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/internal/testenv"
)

// EnvPgBouncerURL names a PgBouncer for the tests: transaction pooling, in front of the
// test server ([EnvURL]), at most one server connection per database and role
// (default_pool_size=1), so that consecutive clients share one server connection. Only
// its host and port are used. The test command (internal/ci/test.sh) starts one and
// sets it.
const EnvPgBouncerURL = "CLONEISO_TEST_PGBOUNCER_URL"

var (
	bouncerOnce sync.Once
	bouncerAddr string
	bouncerErr  error
	bouncerProc *exec.Cmd
	bouncerDir  string
)

// Bouncer returns the host:port of the test PgBouncer: $CLONEISO_TEST_PGBOUNCER_URL,
// else one this test binary starts from the system's pgbouncer (as the postgres user
// when the tests run as root) and [Main] stops; without either, t is skipped, or fails
// when CLONEISO_REQUIRE_SERVICES=1.
func Bouncer(t testing.TB) string {
	t.Helper()
	srv := Server(t)
	bouncerOnce.Do(func() { bouncerAddr, bouncerErr = findBouncer(srv) })
	if bouncerErr != nil {
		testenv.Missing(t, "PgBouncer", bouncerErr.Error())
	}
	return bouncerAddr
}

// BouncerURL returns dsn (a postgres:// URL of the test server) routed through the
// test PgBouncer for driver drv. pgx is set to default_query_exec_mode=cache_describe:
// unnamed statements, which any PgBouncer in transaction-pooling mode passes through
// (named prepared statements need PgBouncer 1.21+ with max_prepared_statements).
func BouncerURL(t testing.TB, dsn string, drv Driver) string {
	t.Helper()
	addr := Bouncer(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	if drv == Pgx {
		q := u.Query()
		q.Set("default_query_exec_mode", "cache_describe")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func findBouncer(srv *url.URL) (string, error) {
	if s := os.Getenv(EnvPgBouncerURL); s != "" {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("%s: %v", EnvPgBouncerURL, err)
		}
		c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %v", EnvPgBouncerURL, u.Host, err)
		}
		c.Close()
		return u.Host, nil
	}
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			return "", fmt.Errorf("no %s and no pgbouncer installed (apt-get install pgbouncer)", EnvPgBouncerURL)
		}
		bin = "/usr/sbin/pgbouncer"
	}
	return startBouncer(bin, srv)
}

// BouncerConfig returns a PgBouncer configuration: transaction pooling on 127.0.0.1:port
// in front of server (host:port) for every database, one server connection per
// database and role, clients authenticated by trust as the users in authFile.
func BouncerConfig(port int, server, authFile, logFile string) string {
	host, sport, _ := net.SplitHostPort(server)
	return fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
logfile = %s
pool_mode = transaction
default_pool_size = 1
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
`, host, sport, port, authFile, logFile)
}

func startBouncer(bin string, srv *url.URL) (string, error) {
	dir, err := os.MkdirTemp("", "cloneiso-pgbouncer-")
	if err != nil {
		return "", err
	}
	bouncerDir = dir
	port, err := freePort()
	if err != nil {
		return "", err
	}
	users := map[string]string{"postgres": "", AppRole: appPassword}
	if srv.User != nil {
		p, _ := srv.User.Password()
		users[srv.User.Username()] = p
	}
	var auth strings.Builder
	for u, p := range users {
		fmt.Fprintf(&auth, "%q %q\n", u, p)
	}
	authFile, ini := filepath.Join(dir, "userlist.txt"), filepath.Join(dir, "pgbouncer.ini")
	logFile := filepath.Join(dir, "pgbouncer.log")
	if err := os.WriteFile(authFile, []byte(auth.String()), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(ini, []byte(BouncerConfig(port, srv.Host, authFile, logFile)), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command(bin, ini)
	cmd.Dir = dir
	if err := asPostgres(cmd, dir); err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start pgbouncer: %v", err)
	}
	bouncerProc = cmd
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			return "", fmt.Errorf("pgbouncer did not listen on %s: %s", addr, log)
		}
		time.Sleep(20 * time.Millisecond) // waiting for a process to start listening
	}
}

func stopBouncer() {
	if bouncerProc != nil && bouncerProc.Process != nil {
		bouncerProc.Process.Kill()
		bouncerProc.Wait()
	}
	if bouncerDir != "" {
		os.RemoveAll(bouncerDir)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
