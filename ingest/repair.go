package ingest

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// fetchBatch is the number of IDs per Fetch when vectors are verified.
const fetchBatch = 100

// expectedVectors returns the vector IDs of the ready document d's chunks, by ordinal.
func expectedVectors(d *records.Document) []string {
	version := DocumentVersion(*d)
	ids := make([]string, d.ChunkCount)
	for i := range ids {
		ids[i] = VectorID(d.ID, version, i)
	}
	return ids
}

// missingVectors returns the ordinals among ords whose vectors the clone's index does
// not hold, asking it by ID (a fetch reads the index, where a listing may lag).
func (p *Pipeline) missingVectors(ctx context.Context, cc clone.CloneContext, d *records.Document, ords []int) ([]int, error) {
	ids := expectedVectors(d)
	var missing []int
	for start := 0; start < len(ords); start += fetchBatch {
		batch := ords[start:min(start+fetchBatch, len(ords))]
		want := make([]string, len(batch))
		for i, o := range batch {
			want[i] = ids[o]
		}
		vs, err := p.vectors.Fetch(ctx, cc, want)
		if err != nil {
			return nil, err
		}
		have := make(map[string]bool, len(vs))
		for _, v := range vs {
			have[v.ID] = true
		}
		for i, o := range batch {
			if !have[want[i]] {
				missing = append(missing, o)
			}
		}
	}
	return missing, nil
}

// restoreVectors re-embeds the stored text of the given chunks of the ready document d
// and upserts their vectors, as the ingestion that committed d wrote them. It fails
// with clone.ErrConflict if d was ingested under another configuration (embedding
// model, chunking), whose vectors this pipeline cannot reproduce. It returns how many
// vectors it wrote.
func (p *Pipeline) restoreVectors(ctx context.Context, cc clone.CloneContext, d *records.Document, ords []int) (int, error) {
	const op = "ingest.Repair"
	version := DocumentVersion(*d)
	if version != p.versionOf(d.ContentHash) {
		return 0, errs.New(errs.Conflict, op, "document %s was ingested with another embedding model or chunking; ingest it again to rebuild its vectors", d.ID)
	}
	written := 0
	for start := 0; start < len(ords); start += p.batch {
		batch := ords[start:min(start+p.batch, len(ords))]
		keys := make([]records.ChunkKey, len(batch))
		for i, o := range batch {
			keys[i] = records.ChunkKey{DocumentID: d.ID, Ordinal: o}
		}
		chunks, err := records.GetChunks(ctx, records.WithAudit(p.q(), audit.Discard), cc, keys) // keys from the document row, not a request: a missing chunk is a concurrent change, not a probe
		if err != nil {
			return written, err
		}
		if len(chunks) != len(batch) {
			return written, errs.New(errs.Conflict, op, "document %s changed during the repair", d.ID)
		}
		texts := make([]string, len(chunks))
		for i, c := range chunks {
			if c.VectorID != VectorID(d.ID, version, c.Ordinal) {
				return written, errs.New(errs.Conflict, op, "chunk %d of document %s names vector %q, not the pipeline's", c.Ordinal, d.ID, c.VectorID)
			}
			texts[i] = c.Content
		}
		vs, err := p.embedder.Embed(ctx, texts)
		if err != nil {
			if errs.KindOf(err) == errs.Unknown {
				err = errs.Wrap(errs.Unavailable, op, err, "embedder failed")
			}
			return written, err
		}
		if len(vs) != len(texts) {
			return written, errs.New(errs.Unavailable, op, "embedder returned %d vectors for %d texts", len(vs), len(texts))
		}
		vectors := make([]vectorstore.Vector, len(chunks))
		for i, c := range chunks {
			vectors[i] = vectorstore.Vector{
				ID: c.VectorID, Values: vs[i],
				Metadata: map[string]any{MetaDocumentID: d.ID.String(), MetaOrdinal: float64(c.Ordinal), MetaVersion: version},
			}
		}
		if err := p.vectors.Upsert(ctx, cc, vectors); err != nil {
			return written, err
		}
		written += len(vectors)
	}
	// The document may have been deleted or replaced meanwhile by another process:
	// then what was just written is a leftover, removed at once (or by Reconcile).
	cur, err := records.GetDocument(ctx, p.q(), cc, d.ID)
	if err != nil && !errors.Is(err, clone.ErrNotFound) {
		return written, err
	}
	if err != nil || cur.Status != records.StatusReady || DocumentVersion(cur) != version {
		ids := make([]string, len(ords))
		for i, o := range ords {
			ids[i] = VectorID(d.ID, version, o)
		}
		if derr := p.deleteVectors(ctx, cc, ids); derr != nil {
			return 0, derr
		}
		return 0, errs.New(errs.Conflict, op, "document %s changed during the repair", d.ID)
	}
	return written, nil
}

// verifyDocument checks that the clone's index holds every chunk vector of the ready
// document d and restores the missing ones; it returns how many it restored.
func (p *Pipeline) verifyDocument(ctx context.Context, cc clone.CloneContext, d *records.Document) (int, error) {
	if d.ChunkCount == 0 {
		return 0, nil
	}
	ords := make([]int, d.ChunkCount)
	for i := range ords {
		ords[i] = i
	}
	missing, err := p.missingVectors(ctx, cc, d, ords)
	if err != nil || len(missing) == 0 {
		return 0, err
	}
	n, err := p.restoreVectors(ctx, cc, d, missing)
	if err != nil {
		return n, fmt.Errorf("restoring %d missing vectors of document %s: %w", len(missing), d.ID, err)
	}
	return n, nil
}
