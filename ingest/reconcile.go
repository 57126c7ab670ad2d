package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// ReconcileOptions configure Reconcile. Nil means the defaults.
type ReconcileOptions struct {
	// StaleAfter overrides Options.StaleAfter for this call: a document "pending" or
	// "processing" for longer was abandoned by a crashed process. Use a small value
	// only when no other process can be ingesting for the clone.
	StaleAfter time.Duration
	// VectorSettle bounds how long Reconcile re-lists an eventually consistent vector
	// index (Pinecone) that still lists vectors it deleted; 0 means
	// DefaultVectorSettle, a negative value means no waiting.
	VectorSettle time.Duration
}

// ReconcileReport says what Reconcile repaired.
type ReconcileReport struct {
	// DocumentsFailed counts abandoned documents without a committed version, now
	// "failed"; DocumentsRestored abandoned updates whose previous version is "ready"
	// again.
	DocumentsFailed, DocumentsRestored int
	// VectorsDeleted and ObjectsDeleted count removed leftovers: vectors and originals
	// of versions that are not committed, of failed documents and of documents that no
	// longer exist.
	VectorsDeleted, ObjectsDeleted int
	// VectorsRestored counts chunk vectors of ready documents that the index had lost
	// (a crash of a store without durable writes, an operator's mistake, a restore
	// from an older backup) and that were re-embedded from the stored chunk text and
	// upserted again; DocumentsRepaired counts the documents they belong to.
	VectorsRestored, DocumentsRepaired int
	// DocumentsUnrepairable counts ready documents with missing vectors that this
	// pipeline cannot rebuild (ingested with another embedding model or chunking, or
	// chunks written by the host under its own vector IDs): ingest them again.
	DocumentsUnrepairable int
	// VectorLagPolls counts the extra listings Reconcile made because the vector index
	// still listed vectors it had deleted (Pinecone's eventual consistency).
	VectorLagPolls int
}

// Reconcile finds and repairs what crashes, interrupted ingestions and deletions, and
// lost vectors left behind for the clone in cc, so that the clone's vectors and
// originals are exactly those of its ready documents:
//
//   - documents "pending" or "processing" for longer than StaleAfter become "failed"
//     (or "ready" again if an earlier version is committed), with the error
//     "interrupted";
//   - the pipeline's vectors (IDs "<document>#<version>-<ordinal>") and originals
//     (ObjectKind, "<document>/<version>") that do not belong to the committed version
//     of a ready document are deleted; so are those of documents that no longer
//     exist. Documents still being ingested (not stale) are left alone, and so are
//     vectors and objects whose names the pipeline did not make.
//   - every ready document must have exactly its chunks' vectors (IDs and count): the
//     missing ones are confirmed by fetching them, re-embedded from the chunks' stored
//     text and upserted (VectorsRestored), so that a question about the document is
//     answered from it again, not from another document;
//
// In this process Reconcile waits for the clone's running Ingest and Delete calls and
// holds new ones off; other processes are only protected by StaleAfter. Run it at
// startup or periodically. It is idempotent.
func (p *Pipeline) Reconcile(ctx context.Context, cc clone.CloneContext, opts *ReconcileOptions) (*ReconcileReport, error) {
	const op = "ingest.Reconcile"
	if err := cc.Validate(op); err != nil {
		return nil, err
	}
	stale := p.stale
	if opts != nil && opts.StaleAfter != 0 {
		if opts.StaleAfter < 0 {
			return nil, errs.New(errs.InvalidInput, op, "negative StaleAfter")
		}
		stale = opts.StaleAfter
	}
	cl := p.cloneLock(cc)
	cl.Lock()
	defer cl.Unlock()

	rep := &ReconcileReport{}
	docs, err := p.allDocuments(ctx, cc)
	if err != nil {
		return nil, err
	}
	s := &sweep{docs: docs, present: map[string]bool{}}
	if s.busy, err = p.releaseStale(ctx, cc, docs, stale, rep); err != nil {
		return rep, err
	}
	if err := p.sweepVectors(ctx, cc, s); err != nil {
		return rep, err
	}
	if err := p.sweepObjects(ctx, cc, s); err != nil {
		return rep, err
	}
	if err := p.recheckMissing(ctx, cc, s); err != nil {
		return rep, err
	}
	if err := p.deleteVectors(ctx, cc, s.dropVectors); err != nil {
		return rep, err
	}
	rep.VectorsDeleted = len(s.dropVectors)
	if rep.VectorLagPolls, err = p.awaitVectorsGone(ctx, cc, s.dropVectors, settleOf(opts)); err != nil {
		return rep, err
	}
	if err := p.repairReady(ctx, cc, docs, s.busy, s.present, rep); err != nil {
		return rep, err
	}
	for _, name := range s.dropObjects {
		if err := p.objects.Delete(ctx, cc, ObjectKind, name); err != nil && !errors.Is(err, clone.ErrNotFound) {
			return rep, err
		}
		rep.ObjectsDeleted++
	}
	return rep, nil
}

// releaseStale is Reconcile's first step: documents "pending" or "processing" for
// longer than stale become "ready" (an update of a committed version) or "failed",
// in docs too. It returns the documents still being ingested (not stale).
func (p *Pipeline) releaseStale(ctx context.Context, cc clone.CloneContext, docs map[uuid.UUID]records.Document, stale time.Duration, rep *ReconcileReport) (map[uuid.UUID]bool, error) {
	now := p.now()
	busy := map[uuid.UUID]bool{}
	for id, d := range docs {
		if d.Status != records.StatusProcessing && d.Status != records.StatusPending {
			continue
		}
		if now.Sub(d.UpdatedAt) < stale {
			busy[id] = true
			continue
		}
		a := &attempt{doc: d}
		if d.Status == records.StatusProcessing && d.ChunkCount > 0 {
			if err := p.release(ctx, cc, a, records.StatusReady, "interrupted"); err != nil {
				return busy, err
			}
			d.Status = records.StatusReady
			rep.DocumentsRestored++
		} else {
			if err := p.release(ctx, cc, a, records.StatusFailed, "interrupted"); err != nil {
				return busy, err
			}
			d.Status = records.StatusFailed
			rep.DocumentsFailed++
		}
		docs[id] = d
	}
	return busy, nil
}

// sweep is what Reconcile's listings of the clone's vectors and originals found.
type sweep struct {
	docs map[uuid.UUID]records.Document // the clone's documents by ID
	busy map[uuid.UUID]bool             // documents still being ingested
	// present holds every pipeline vector ID the index listed.
	present map[string]bool
	// dropVectors and dropObjects are to be deleted; missingVectors and missingObjects
	// belong to documents that did not exist at the first listing (re-checked).
	dropVectors, dropObjects       []string
	missingVectors, missingObjects []sweepItem
}

// sweepItem is a vector ID or object name of document doc.
type sweepItem struct {
	doc uuid.UUID
	key string
}

// keepable reports whether a versioned item of document id is current, or that the
// document does not exist (missing).
func (s *sweep) keepable(id uuid.UUID, version string) (keep, missing bool) {
	d, ok := s.docs[id]
	switch {
	case !ok:
		return false, true
	case s.busy[id]:
		return true, false
	default:
		return d.Status == records.StatusReady && DocumentVersion(d) == version, false
	}
}

// sweepVectors lists the clone's vectors: it records the pipeline's vectors in
// s.present and sorts those not of a current version (or beyond its chunks) into
// s.dropVectors, or s.missingVectors for documents that do not exist.
func (p *Pipeline) sweepVectors(ctx context.Context, cc clone.CloneContext, s *sweep) error {
	token := ""
	for {
		page, err := p.vectors.List(ctx, cc, &vectorstore.ListOptions{PageToken: token, Limit: vectorstore.MaxListLimit})
		if err != nil {
			return err
		}
		for _, vid := range page.IDs {
			id, version, ord, ok := parseVectorID(vid)
			if !ok {
				continue
			}
			s.present[vid] = true
			keep, missing := s.keepable(id, version)
			if keep && !s.busy[id] && ord >= s.docs[id].ChunkCount {
				keep = false
			}
			switch {
			case missing:
				s.missingVectors = append(s.missingVectors, sweepItem{id, vid})
			case !keep:
				s.dropVectors = append(s.dropVectors, vid)
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		token = page.NextPageToken
	}
}

// sweepObjects lists the clone's originals (if the pipeline keeps them) and sorts those
// not of a current version into s.dropObjects, or s.missingObjects for documents that
// do not exist.
func (p *Pipeline) sweepObjects(ctx context.Context, cc clone.CloneContext, s *sweep) error {
	if p.objects == nil {
		return nil
	}
	token := ""
	for {
		page, err := p.objects.List(ctx, cc, &objectstore.ListOptions{Kind: ObjectKind, PageToken: token, PageSize: 1000})
		if err != nil {
			return err
		}
		for _, o := range page.Objects {
			id, version, ok := parseObjectName(o.Name)
			if !ok {
				continue
			}
			keep, missing := s.keepable(id, version)
			if keep && !s.busy[id] && s.docs[id].ObjectKey == "" {
				keep = false
			}
			switch {
			case missing:
				s.missingObjects = append(s.missingObjects, sweepItem{id, o.Name})
			case !keep:
				s.dropObjects = append(s.dropObjects, o.Name)
			}
		}
		if page.NextPageToken == "" {
			return nil
		}
		token = page.NextPageToken
	}
}

// recheckMissing drops the items of documents that did not exist at the first listing
// only if the documents still do not exist (one may have been created meanwhile by
// another process; rows are always created before vectors and objects).
func (p *Pipeline) recheckMissing(ctx context.Context, cc clone.CloneContext, s *sweep) error {
	if len(s.missingVectors)+len(s.missingObjects) == 0 {
		return nil
	}
	again, err := p.allDocuments(ctx, cc)
	if err != nil {
		return err
	}
	for _, it := range s.missingVectors {
		if _, ok := again[it.doc]; !ok {
			s.dropVectors = append(s.dropVectors, it.key)
		}
	}
	for _, it := range s.missingObjects {
		if _, ok := again[it.doc]; !ok {
			s.dropObjects = append(s.dropObjects, it.key)
		}
	}
	return nil
}

// allDocuments returns every document of the clone by ID.
func (p *Pipeline) allDocuments(ctx context.Context, cc clone.CloneContext) (map[uuid.UUID]records.Document, error) {
	out := map[uuid.UUID]records.Document{}
	cursor := ""
	for {
		page, err := records.ListDocuments(ctx, p.q(), cc, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, d := range page.Items {
			out[d.ID] = d
		}
		if page.Next == "" {
			return out, nil
		}
		cursor = page.Next
	}
}

// repairReady restores the missing chunk vectors of the clone's ready documents (those
// not being ingested), given the IDs the index listed.
func (p *Pipeline) repairReady(ctx context.Context, cc clone.CloneContext, docs map[uuid.UUID]records.Document, busy map[uuid.UUID]bool, present map[string]bool, rep *ReconcileReport) error {
	ids := make([]uuid.UUID, 0, len(docs))
	for id := range docs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		d := docs[id]
		if d.Status != records.StatusReady || busy[id] || d.ChunkCount == 0 {
			continue
		}
		var listedMissing []int
		for i, vid := range expectedVectors(&d) {
			if !present[vid] {
				listedMissing = append(listedMissing, i)
			}
		}
		if len(listedMissing) == 0 {
			continue
		}
		// A listing may lag the index (Pinecone's does): confirm by ID.
		missing, err := p.missingVectors(ctx, cc, &d, listedMissing)
		if err != nil {
			return err
		}
		if len(missing) == 0 {
			continue
		}
		n, err := p.restoreVectors(ctx, cc, &d, missing)
		rep.VectorsRestored += n
		switch {
		case errors.Is(err, clone.ErrConflict):
			rep.DocumentsUnrepairable++
		case err != nil:
			return fmt.Errorf("restoring %d missing vectors of document %s: %w", len(missing), d.ID, err)
		default:
			rep.DocumentsRepaired++
		}
	}
	return nil
}
