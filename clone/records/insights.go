package records

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// Insight is something the clone learned about its owner or their domain: a fact, a
// preference, a way of speaking.
type Insight struct {
	TenantID  uuid.UUID       `db:"tenant_id" json:"tenant_id"`       // from the clone context
	CloneID   uuid.UUID       `db:"clone_id" json:"clone_id"`         // from the clone context
	ID        uuid.UUID       `db:"id" json:"id"`                     // zero on create: a new random ID
	UserID    *string         `db:"user_id" json:"user_id,omitempty"` // legacy user the record was migrated from, if any; set on create only
	Category  string          `db:"category" json:"category"`         // at most MaxShortBytes
	Content   string          `db:"content" json:"content"`           // 1 to MaxContentBytes
	Metadata  json.RawMessage `db:"-" json:"metadata,omitempty"`      // a JSON object, at most MaxJSONBytes
	CreatedAt time.Time       `db:"created_at" json:"created_at"`
	UpdatedAt time.Time       `db:"updated_at" json:"updated_at"`
}

type insightRow struct {
	Insight
	MetadataText string `db:"metadata"`
}

func (r insightRow) record() Insight {
	in := r.Insight
	in.Metadata = json.RawMessage(r.MetadataText)
	in.CreatedAt, in.UpdatedAt = utc(in.CreatedAt), utc(in.UpdatedAt)
	return in
}

const insightCols = `tenant_id, clone_id, id, user_id, category, content, metadata, created_at, updated_at`

var insights = &table[Insight, insightRow]{
	record: "insight", name: "insights",
	keys: newKeyset("insight", "insights", insightCols, "", false),
	get:  `SELECT ` + insightCols + ` FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
	insert: `INSERT INTO insights (tenant_id, clone_id, id, user_id, category, content, metadata,
		created_at, updated_at) VALUES (:tenant_id, :clone_id, :id, :user_id, :category, :content, :metadata,
		:created_at, :created_at)`,
	update: `UPDATE insights SET category = :category, content = :content, metadata = :metadata,
		updated_at = :now WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id
		RETURNING ` + insightCols,
	validate: validateInsight,
	fields: func(in *Insight) common {
		return common{&in.TenantID, &in.CloneID, &in.ID, &in.Metadata, &in.CreatedAt, &in.UpdatedAt}
	},
	insertArgs: func(in *Insight) map[string]any {
		return map[string]any{"user_id": in.UserID, "category": in.Category, "content": in.Content}
	},
	updateArgs: func(in *Insight) map[string]any {
		return map[string]any{"category": in.Category, "content": in.Content}
	},
}

func validateInsight(op string, in *Insight) (string, error) {
	if err := checkText(op, "content", in.Content, MaxContentBytes, true); err != nil {
		return "", err
	}
	if err := checkText(op, "category", in.Category, MaxShortBytes, false); err != nil {
		return "", err
	}
	if err := checkUserID(op, in.UserID); err != nil {
		return "", err
	}
	return jsonText(op, "metadata", in.Metadata, '{')
}

// CreateInsight stores a new insight for the clone in cc and returns it as stored:
// TenantID and CloneID from cc (a payload naming another clone is refused with
// clone.ErrCloneMismatch and audited), a new ID unless in.ID is set (an ID the clone
// already uses is clone.ErrConflict), both timestamps now.
func CreateInsight(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, in Insight) (Insight, error) {
	return insights.create(ctx, q, cc, "records.CreateInsight", in)
}

// GetInsight returns insight id of the clone in cc. An insight that is missing or
// another clone's is clone.ErrNotFound, and audited.
func GetInsight(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) (Insight, error) {
	return insights.read(ctx, q, cc, "records.GetInsight", id)
}

// UpdateInsight replaces the category, content and metadata of insight in.ID, sets
// UpdatedAt and returns the insight as stored. An insight that is missing or another
// clone's is clone.ErrNotFound, and audited.
func UpdateInsight(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, in Insight) (Insight, error) {
	return insights.replace(ctx, q, cc, "records.UpdateInsight", in)
}

// DeleteInsight deletes insight id. An insight that is missing or another clone's is
// clone.ErrNotFound, and audited.
func DeleteInsight(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) error {
	return insights.remove(ctx, q, cc, "records.DeleteInsight", id)
}

// ListInsights returns one page of the clone's insights in the stable order
// (CreatedAt, ID), oldest first unless opts.Descending.
func ListInsights(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, opts *ListOptions) (Page[Insight], error) {
	return insights.list(ctx, q, cc, "records.ListInsights", opts)
}

// CountInsights returns the number of the clone's insights.
func CountInsights(ctx context.Context, q clonesql.Querier, cc clone.CloneContext) (int64, error) {
	return insights.count(ctx, q, cc, "records.CountInsights")
}
