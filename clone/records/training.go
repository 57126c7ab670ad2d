package records

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// TrainingExample is a prompt and the response the clone should give to it, for
// fine-tuning or few-shot prompting.
type TrainingExample struct {
	TenantID  uuid.UUID       `db:"tenant_id" json:"tenant_id"`       // from the clone context
	CloneID   uuid.UUID       `db:"clone_id" json:"clone_id"`         // from the clone context
	ID        uuid.UUID       `db:"id" json:"id"`                     // zero on create: a new random ID
	UserID    *string         `db:"user_id" json:"user_id,omitempty"` // legacy user the record was migrated from, if any; set on create only
	Prompt    string          `db:"prompt" json:"prompt"`             // 1 to MaxContentBytes
	Response  string          `db:"response" json:"response"`         // 1 to MaxContentBytes
	Metadata  json.RawMessage `db:"-" json:"metadata,omitempty"`      // a JSON object, at most MaxJSONBytes
	CreatedAt time.Time       `db:"created_at" json:"created_at"`
	UpdatedAt time.Time       `db:"updated_at" json:"updated_at"`
}

type trainingExampleRow struct {
	TrainingExample
	MetadataText string `db:"metadata"`
}

func (r trainingExampleRow) record() TrainingExample {
	ex := r.TrainingExample
	ex.Metadata = json.RawMessage(r.MetadataText)
	ex.CreatedAt, ex.UpdatedAt = utc(ex.CreatedAt), utc(ex.UpdatedAt)
	return ex
}

const trainingExampleCols = `tenant_id, clone_id, id, user_id, prompt, response, metadata, created_at, updated_at`

var trainingExamples = newKeyset("training example", "training_examples", trainingExampleCols, "", false)

func validateTrainingExample(op string, ex *TrainingExample) (string, error) {
	if err := checkText(op, "prompt", ex.Prompt, MaxContentBytes, true); err != nil {
		return "", err
	}
	if err := checkText(op, "response", ex.Response, MaxContentBytes, true); err != nil {
		return "", err
	}
	if err := checkUserID(op, ex.UserID); err != nil {
		return "", err
	}
	return jsonText(op, "metadata", ex.Metadata, '{')
}

// CreateTrainingExample stores a new training example for the clone in cc and returns
// it as stored: TenantID and CloneID from cc (a payload naming another clone is refused
// with clone.ErrCloneMismatch and audited), a new ID unless ex.ID is set (an ID the
// clone already uses is clone.ErrConflict), both timestamps now.
func CreateTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, ex TrainingExample) (TrainingExample, error) {
	const op = "records.CreateTrainingExample"
	if err := begin(ctx, q, cc, op); err != nil {
		return TrainingExample{}, err
	}
	if err := checkScope(ctx, q, cc, op, ex.TenantID, ex.CloneID); err != nil {
		return TrainingExample{}, err
	}
	meta, err := validateTrainingExample(op, &ex)
	if err != nil {
		return TrainingExample{}, err
	}
	if ex.ID, err = newID(op, "training example ID", ex.ID); err != nil {
		return TrainingExample{}, err
	}
	ex.TenantID, ex.CloneID = cc.TenantID(), cc.CloneID()
	ex.CreatedAt = now()
	ex.UpdatedAt = ex.CreatedAt
	_, err = q.Exec(ctx, cc, `INSERT INTO training_examples (tenant_id, clone_id, id, user_id, prompt, response,
		metadata, created_at, updated_at) VALUES (:tenant_id, :clone_id, :id, :user_id, :prompt, :response, :metadata,
		:created_at, :created_at)`, map[string]any{
		"id": ex.ID, "user_id": ex.UserID, "prompt": ex.Prompt, "response": ex.Response, "metadata": meta,
		"created_at": ex.CreatedAt,
	})
	if err != nil {
		return TrainingExample{}, err
	}
	ex.Metadata = json.RawMessage(meta)
	return ex, nil
}

// GetTrainingExample returns training example id of the clone in cc. One that is
// missing or another clone's is clone.ErrNotFound, and audited.
func GetTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) (TrainingExample, error) {
	const op = "records.GetTrainingExample"
	var r trainingExampleRow
	err := getByID(ctx, q, cc, op, "training example",
		`SELECT `+trainingExampleCols+` FROM training_examples WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, &r, id)
	if err != nil {
		return TrainingExample{}, err
	}
	return r.record(), nil
}

// UpdateTrainingExample replaces the prompt, response and metadata of training example
// ex.ID, sets UpdatedAt and returns it as stored. One that is missing or another
// clone's is clone.ErrNotFound, and audited.
func UpdateTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, ex TrainingExample) (TrainingExample, error) {
	const op = "records.UpdateTrainingExample"
	if err := begin(ctx, q, cc, op); err != nil {
		return TrainingExample{}, err
	}
	if err := checkScope(ctx, q, cc, op, ex.TenantID, ex.CloneID); err != nil {
		return TrainingExample{}, err
	}
	if err := checkID(op, "training example ID", ex.ID); err != nil {
		return TrainingExample{}, err
	}
	meta, err := validateTrainingExample(op, &ex)
	if err != nil {
		return TrainingExample{}, err
	}
	var r trainingExampleRow
	err = q.Get(ctx, cc, &r, `UPDATE training_examples SET prompt = :prompt, response = :response, metadata = :metadata,
		updated_at = :now WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id
		RETURNING `+trainingExampleCols, map[string]any{
		"id": ex.ID, "prompt": ex.Prompt, "response": ex.Response, "metadata": meta, "now": now(),
	})
	if err := found(ctx, q, cc, op, "training example", ex.ID, err); err != nil {
		return TrainingExample{}, err
	}
	return r.record(), nil
}

// DeleteTrainingExample deletes training example id. One that is missing or another
// clone's is clone.ErrNotFound, and audited.
func DeleteTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) error {
	return deleteByID(ctx, q, cc, "records.DeleteTrainingExample", "training example", "training_examples", id)
}

// ListTrainingExamples returns one page of the clone's training examples in the stable
// order (CreatedAt, ID), oldest first unless opts.Descending.
func ListTrainingExamples(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, opts *ListOptions) (Page[TrainingExample], error) {
	const op = "records.ListTrainingExamples"
	if err := begin(ctx, q, cc, op); err != nil {
		return Page[TrainingExample]{}, err
	}
	return listPage(ctx, q, cc, op, trainingExamples, uuid.Nil, opts, trainingExampleRow.record,
		func(ex TrainingExample) (time.Time, uuid.UUID, int64) { return ex.CreatedAt, ex.ID, 0 })
}

// CountTrainingExamples returns the number of the clone's training examples.
func CountTrainingExamples(ctx context.Context, q clonesql.Querier, cc clone.CloneContext) (int64, error) {
	const op = "records.CountTrainingExamples"
	if err := begin(ctx, q, cc, op); err != nil {
		return 0, err
	}
	return count(ctx, q, cc, trainingExamples, uuid.Nil)
}
