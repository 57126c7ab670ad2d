package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/objectstore"
)

// MigratedReport is what [Pipeline.IngestMigrated] did in one clone.
type MigratedReport struct {
	// Ingested counts the documents ingested again from their original.
	Ingested int
	// Failed maps each document that could not be ingested to why: its original is
	// not in the clone (clone.ErrNotFound, nothing read), or reading, extracting or
	// indexing it failed (the error of [Pipeline.Ingest]). The document is left as it
	// was.
	Failed map[string]error
}

// Err returns nil if every document was ingested, else the failures joined.
func (r *MigratedReport) Err() error {
	errs := make([]error, 0, len(r.Failed))
	for _, err := range r.Failed {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// IngestMigrated makes the documents of cc that the pipeline did not ingest
// answerable: documents written by another system, such as those package
// migrate/legacy moved into the clone, whose vectors (if any) are not in the
// pipeline's form and whose embedding model is unknown. Each document of cc with no
// embedding model recorded (see [EmbeddingModel]) and an object key is ingested
// again, through [Pipeline.Ingest], from the original its object key names, keeping
// its ID, title, source name, content type and metadata; afterwards it is a document
// like any other (versioned original, chunks, vectors, embedding model).
//
// The original must be an object of cc itself (its key inside the clone's prefix,
// read through the clone-scoped bucket); a key outside it is reported in
// MigratedReport.Failed as clone.ErrNotFound and never read. Documents without an
// object key, or already ingested by the pipeline, are left alone, so calling it
// again ingests only what is still missing. A document that fails does not stop
// the others; the returned error is for the listing itself (and ctx).
func (p *Pipeline) IngestMigrated(ctx context.Context, cc clone.CloneContext) (MigratedReport, error) {
	rep := MigratedReport{Failed: map[string]error{}}
	prefix, err := objectstore.Prefix(cc)
	if err != nil {
		return rep, err
	}
	var todo []records.Document
	for cursor := ""; ; {
		page, err := records.ListDocuments(ctx, p.db, cc, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cursor})
		if err != nil {
			return rep, err
		}
		for _, d := range page.Items {
			if EmbeddingModel(d) == "" && d.ObjectKey != "" {
				todo = append(todo, d)
			}
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	for _, d := range todo {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := p.ingestMigrated(ctx, cc, prefix, d); err != nil {
			rep.Failed[d.ID.String()] = err
			continue
		}
		rep.Ingested++
	}
	return rep, nil
}

// ingestMigrated ingests d again from the original its object key names in cc,
// streamed through Source.Reader so that the pipeline's size limit bounds what is read.
func (p *Pipeline) ingestMigrated(ctx context.Context, cc clone.CloneContext, prefix string, d records.Document) error {
	const op = "ingest.IngestMigrated"
	kind, name, ok := strings.Cut(strings.TrimPrefix(d.ObjectKey, prefix), "/")
	if !strings.HasPrefix(d.ObjectKey, prefix) || !ok {
		return clone.Errorf(clone.ErrNotFound, "%s: document %s: its object key %q is not in the clone", op, d.ID, d.ObjectKey)
	}
	r, err := p.objects.Get(ctx, cc, kind, name, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	var meta map[string]any
	if len(d.Metadata) > 0 {
		if err := json.Unmarshal(d.Metadata, &meta); err != nil {
			return clone.Errorf(clone.ErrInvalidInput, "%s: document %s: metadata: %v", op, d.ID, err)
		}
	}
	_, err = p.Ingest(ctx, cc, Source{DocumentID: d.ID, Title: d.Title, SourceName: d.SourceName,
		ContentType: d.ContentType, Reader: r, Metadata: meta})
	return err
}
