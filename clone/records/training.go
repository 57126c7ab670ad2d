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

var trainingExamples = &table[TrainingExample, trainingExampleRow]{
	record: "training example", name: "training_examples",
	keys: newKeyset("training example", "training_examples", trainingExampleCols, "", false),
	get:  `SELECT ` + trainingExampleCols + ` FROM training_examples WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
	insert: `INSERT INTO training_examples (tenant_id, clone_id, id, user_id, prompt, response,
		metadata, created_at, updated_at) VALUES (:tenant_id, :clone_id, :id, :user_id, :prompt, :response, :metadata,
		:created_at, :created_at)`,
	update: `UPDATE training_examples SET prompt = :prompt, response = :response, metadata = :metadata,
		updated_at = :now WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id
		RETURNING ` + trainingExampleCols,
	validate: validateTrainingExample,
	fields: func(ex *TrainingExample) common {
		return common{&ex.TenantID, &ex.CloneID, &ex.ID, &ex.Metadata, &ex.CreatedAt, &ex.UpdatedAt}
	},
	insertArgs: func(ex *TrainingExample) map[string]any {
		return map[string]any{"user_id": ex.UserID, "prompt": ex.Prompt, "response": ex.Response}
	},
	updateArgs: func(ex *TrainingExample) map[string]any {
		return map[string]any{"prompt": ex.Prompt, "response": ex.Response}
	},
}

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
	return trainingExamples.create(ctx, q, cc, "records.CreateTrainingExample", ex)
}

// GetTrainingExample returns training example id of the clone in cc. One that is
// missing or another clone's is clone.ErrNotFound, and audited.
func GetTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) (TrainingExample, error) {
	return trainingExamples.read(ctx, q, cc, "records.GetTrainingExample", id)
}

// UpdateTrainingExample replaces the prompt, response and metadata of training example
// ex.ID, sets UpdatedAt and returns it as stored. One that is missing or another
// clone's is clone.ErrNotFound, and audited.
func UpdateTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, ex TrainingExample) (TrainingExample, error) {
	return trainingExamples.replace(ctx, q, cc, "records.UpdateTrainingExample", ex)
}

// DeleteTrainingExample deletes training example id. One that is missing or another
// clone's is clone.ErrNotFound, and audited.
func DeleteTrainingExample(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) error {
	return trainingExamples.remove(ctx, q, cc, "records.DeleteTrainingExample", id)
}

// ListTrainingExamples returns one page of the clone's training examples in the stable
// order (CreatedAt, ID), oldest first unless opts.Descending.
func ListTrainingExamples(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, opts *ListOptions) (Page[TrainingExample], error) {
	return trainingExamples.list(ctx, q, cc, "records.ListTrainingExamples", opts)
}

// CountTrainingExamples returns the number of the clone's training examples.
func CountTrainingExamples(ctx context.Context, q clonesql.Querier, cc clone.CloneContext) (int64, error) {
	return trainingExamples.count(ctx, q, cc, "records.CountTrainingExamples")
}
