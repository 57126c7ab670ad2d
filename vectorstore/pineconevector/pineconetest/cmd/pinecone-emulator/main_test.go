package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// asCommand, set in the environment, makes the test binary behave as
// pinecone-emulator, so the tests run it as a process of its own.
const asCommand = "PINECONE_EMULATOR_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(asCommand) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// start runs the command with args and returns the hosts of its "ready" lines by name.
func start(t *testing.T, args ...string) (map[string]string, *exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCommand+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	hosts := map[string]string{}
	sc := bufio.NewScanner(out)
	for len(hosts) < countIndexes(args) && sc.Scan() {
		f := map[string]string{}
		for _, kv := range strings.Fields(sc.Text()) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if !strings.HasPrefix(sc.Text(), "ready ") || f["host"] == "" {
			t.Fatalf("unexpected output %q", sc.Text())
		}
		hosts[f["name"]] = f["host"]
	}
	if len(hosts) < countIndexes(args) {
		_ = cmd.Wait()
		t.Fatalf("the command ended before it was ready: %s", stderr.String())
	}
	return hosts, cmd, &stderr
}

func countIndexes(args []string) int {
	n := 0
	for _, a := range args {
		if a == "-index" {
			n++
		}
	}
	return n
}

func connect(t *testing.T, host, ns string) *pinecone.IndexConnection {
	t.Helper()
	pc, err := pinecone.NewClientBase(pinecone.NewClientBaseParams{Headers: map[string]string{"Api-Key": "k"}})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pc.Index(pinecone.NewIndexConnParams{Host: host, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return idx
}

func TestServesIndexesAsAProcess(t *testing.T) {
	ctx := context.Background()
	hosts, cmd, stderr := start(t,
		"-index", "name=docs,dimension=3,api-key=k",
		"-index", "name=pods,addr=127.0.0.1:0,dimension=2,metric=dotproduct,kind=pod",
		"-index", "name=slow,dimension=2,lag-requests=2",
	)

	docs := connect(t, hosts["docs"], "ns")
	a, b := []float32{1, 0, 0}, []float32{0, 1, 0}
	if _, err := docs.UpsertVectors(ctx, []*pinecone.Vector{{Id: "a", Values: &a}, {Id: "b", Values: &b}}); err != nil {
		t.Fatal(err)
	}
	res, err := docs.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0.1, 0}, TopK: 2})
	if err != nil || len(res.Matches) != 2 || res.Matches[0].Vector.Id != "a" {
		t.Fatalf("query = %+v, %v", res, err)
	}
	if res.Usage == nil || res.Usage.ReadUnits == 0 {
		t.Fatalf("a serverless index reported no read units: %+v", res.Usage)
	}
	pcNoKey, _ := pinecone.NewClientBase(pinecone.NewClientBaseParams{})
	noKey, _ := pcNoKey.Index(pinecone.NewIndexConnParams{Host: hosts["docs"], Namespace: "ns"})
	defer noKey.Close()
	if _, err := noKey.FetchVectors(ctx, []string{"a"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("without the API key: %v", err)
	}

	pods := connect(t, hosts["pods"], "ns")
	if _, err := pods.ListVectors(ctx, &pinecone.ListVectorsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("list on the pod index: %v, want UNIMPLEMENTED", err)
	}

	slow := connect(t, hosts["slow"], "ns")
	v := []float32{1, 1}
	if _, err := slow.UpsertVectors(ctx, []*pinecone.Vector{{Id: "x", Values: &v}}); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for range 3 {
		st, err := slow.DescribeIndexStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen = int(st.TotalVectorCount)
		if seen == 1 {
			break
		}
	}
	if seen != 1 {
		t.Fatal("the lagging index never showed the write")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v (%s)", err, stderr.String())
	}
}

func TestBadConfiguration(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-index", "name=x"},      // no dimension
		{"-index", "dimension=0"}, // out of range
		{"-index", "dimension=4,metric=manhattan"}, // unknown metric
		{"-index", "dimension=4,kind=starter"},     // unknown kind
		{"-index", "dimension=4,colour=blue"},      // unknown setting
		{"-index", "dimension=4,addr=nowhere"},     // bad address
		{"-index", "dimension=4,lag=soon"},         // bad duration
	} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), asCommand+"=1")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: %v, want exit status 2 (%s)", args, err, out)
		}
	}
}
