package audit_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone/audit"
)

// Denials are recorded with Emit: the refusal stands whatever the sink does, and a sink
// that fails is logged (with the whole event, on slog.Default()) and counted. Export
// audit.Failures as a metric and alert when it grows.
func ExampleEmit() {
	down := audit.SinkFunc(func(context.Context, audit.Event) error { return errors.New("audit database unreachable") })
	before := audit.Failures()

	audit.Emit(context.Background(), down, audit.Event{Action: "vectorstore.Query", Outcome: audit.Denied, Reason: "no clone context"})

	fmt.Println("lost events:", audit.Failures()-before)
	// Output:
	// lost events: 1
}

// Where the event is the point of the operation, check Record's error and fail.
func ExampleRecord() {
	sink := &audit.Memory{}
	if err := audit.Record(context.Background(), sink, audit.Event{Action: "host.ExportData", Outcome: audit.Allowed, Reason: "ticket 42"}); err != nil {
		fmt.Println("refuse the export:", err)
		return
	}
	fmt.Println(len(sink.Events()), sink.Events()[0].Action)
	// Output:
	// 1 host.ExportData
}
