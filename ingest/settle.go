package ingest

import (
	"context"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// DefaultVectorSettle is how long Reconcile waits for an eventually consistent vector
// index (Pinecone) to stop listing the vectors it deleted.
const DefaultVectorSettle = 2 * time.Minute

// awaitVectorsGone re-lists the clone's vectors, with backoff, until none of ids is
// listed or settle has passed, so that Reconcile never reports its clean-up complete
// before the index shows it. It returns how many extra listings lag made it take.
func (p *Pipeline) awaitVectorsGone(ctx context.Context, cc clone.CloneContext, ids []string, settle time.Duration) (int, error) {
	const op = "ingest.Reconcile"
	if len(ids) == 0 {
		return 0, nil
	}
	if settle == 0 {
		settle = DefaultVectorSettle
	}
	gone := map[string]bool{}
	for _, id := range ids {
		gone[id] = true
	}
	deadline := time.Now().Add(settle)
	wait := 5 * time.Millisecond
	for polls := 0; ; polls++ {
		listed := 0
		token := ""
		for {
			page, err := p.vectors.List(ctx, cc, &vectorstore.ListOptions{PageToken: token, Limit: vectorstore.MaxListLimit})
			if err != nil {
				return polls, err
			}
			for _, id := range page.IDs {
				if gone[id] {
					listed++
				}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		if listed == 0 {
			return polls, nil
		}
		if settle < 0 || !time.Now().Add(wait).Before(deadline) {
			return polls, errs.New(errs.Unavailable, op, "%d deleted vectors still listed after %d re-listings: the index is lagging; call Reconcile again", listed, polls)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return polls, errs.Wrap(errs.Unavailable, op, ctx.Err(), "waiting for the index to show the deletions")
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

func settleOf(o *ReconcileOptions) time.Duration {
	if o == nil {
		return 0
	}
	return o.VectorSettle
}
