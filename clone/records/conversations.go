package records

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Conversation is a chat between someone and the clone; its turns are [Message]s.
type Conversation struct {
	TenantID  uuid.UUID       `db:"tenant_id" json:"tenant_id"`       // from the clone context
	CloneID   uuid.UUID       `db:"clone_id" json:"clone_id"`         // from the clone context
	ID        uuid.UUID       `db:"id" json:"id"`                     // zero on create: a new random ID
	UserID    *string         `db:"user_id" json:"user_id,omitempty"` // legacy user the record was migrated from, if any; set on create only
	Subject   string          `db:"subject" json:"subject"`           // who is talking to the clone, at most MaxShortBytes; set on create
	Title     string          `db:"title" json:"title"`               // at most MaxTitleBytes
	Metadata  json.RawMessage `db:"-" json:"metadata,omitempty"`      // a JSON object, at most MaxJSONBytes
	CreatedAt time.Time       `db:"created_at" json:"created_at"`
	UpdatedAt time.Time       `db:"updated_at" json:"updated_at"` // also moved by every appended message
}

type conversationRow struct {
	Conversation
	MetadataText string `db:"metadata"`
}

func (r conversationRow) record() Conversation {
	c := r.Conversation
	c.Metadata = json.RawMessage(r.MetadataText)
	c.CreatedAt, c.UpdatedAt = utc(c.CreatedAt), utc(c.UpdatedAt)
	return c
}

const conversationCols = `tenant_id, clone_id, id, user_id, subject, title, metadata, created_at, updated_at`

var conversations = &table[Conversation, conversationRow]{
	record: "conversation", name: "conversations",
	keys: newKeyset("conversation", "conversations", conversationCols, "", false),
	get:  `SELECT ` + conversationCols + ` FROM conversations WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
	insert: `INSERT INTO conversations (tenant_id, clone_id, id, user_id, subject, title, metadata,
		created_at, updated_at) VALUES (:tenant_id, :clone_id, :id, :user_id, :subject, :title, :metadata,
		:created_at, :created_at)`,
	update: `UPDATE conversations SET title = :title, metadata = :metadata, updated_at = :now
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id
		RETURNING ` + conversationCols,
	validate: validateConversation,
	fields: func(c *Conversation) common {
		return common{&c.TenantID, &c.CloneID, &c.ID, &c.Metadata, &c.CreatedAt, &c.UpdatedAt}
	},
	insertArgs: func(c *Conversation) map[string]any {
		return map[string]any{"user_id": c.UserID, "subject": c.Subject, "title": c.Title}
	},
	updateArgs: func(c *Conversation) map[string]any {
		return map[string]any{"title": c.Title}
	},
}

func validateConversation(op string, c *Conversation) (string, error) {
	if err := checkText(op, "subject", c.Subject, MaxShortBytes, false); err != nil {
		return "", err
	}
	if err := checkText(op, "title", c.Title, MaxTitleBytes, false); err != nil {
		return "", err
	}
	if err := checkUserID(op, c.UserID); err != nil {
		return "", err
	}
	return jsonText(op, "metadata", c.Metadata, '{')
}

// CreateConversation stores a new conversation for the clone in cc and returns it as
// stored: TenantID and CloneID from cc (a payload naming another clone is refused with
// clone.ErrCloneMismatch and audited), a new ID unless c.ID is set (an ID the clone
// already uses is clone.ErrConflict), both timestamps now.
func CreateConversation(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, c Conversation) (Conversation, error) {
	return conversations.create(ctx, q, cc, "records.CreateConversation", c)
}

// GetConversation returns conversation id of the clone in cc. A conversation that is
// missing or another clone's is clone.ErrNotFound, and audited.
func GetConversation(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) (Conversation, error) {
	return conversations.read(ctx, q, cc, "records.GetConversation", id)
}

// UpdateConversation replaces the title and metadata of conversation c.ID (Subject is
// kept), sets UpdatedAt and returns it as stored. A conversation that is missing or
// another clone's is clone.ErrNotFound, and audited.
func UpdateConversation(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, c Conversation) (Conversation, error) {
	return conversations.replace(ctx, q, cc, "records.UpdateConversation", c)
}

// DeleteConversation deletes conversation id and its messages. A conversation that is
// missing or another clone's is clone.ErrNotFound, and audited.
func DeleteConversation(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) error {
	return conversations.remove(ctx, q, cc, "records.DeleteConversation", id)
}

// ListConversations returns one page of the clone's conversations in the stable order
// (CreatedAt, ID), oldest first unless opts.Descending. (The order is by creation, not
// by last message: UpdatedAt moves, and a cursor on a moving key would skip or repeat
// conversations.)
func ListConversations(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, opts *ListOptions) (Page[Conversation], error) {
	return conversations.list(ctx, q, cc, "records.ListConversations", opts)
}

// CountConversations returns the number of the clone's conversations.
func CountConversations(ctx context.Context, q clonesql.Querier, cc clone.CloneContext) (int64, error) {
	return conversations.count(ctx, q, cc, "records.CountConversations")
}

// Message is one turn of a conversation.
type Message struct {
	TenantID       uuid.UUID       `db:"tenant_id" json:"tenant_id"` // from the clone context
	CloneID        uuid.UUID       `db:"clone_id" json:"clone_id"`   // from the clone context
	ConversationID uuid.UUID       `db:"conversation_id" json:"conversation_id"`
	ID             uuid.UUID       `db:"id" json:"id"`                     // zero on append: a new random ID
	UserID         *string         `db:"user_id" json:"user_id,omitempty"` // legacy user the record was migrated from, if any; set on create only
	Role           MessageRole     `db:"role" json:"role"`                 // RoleSystem, RoleUser or RoleAssistant
	Content        string          `db:"content" json:"content"`           // at most MaxContentBytes (may be empty)
	Citations      json.RawMessage `db:"-" json:"citations,omitempty"`     // a JSON array, at most MaxJSONBytes; e.g. the chunks an answer used
	CreatedAt      time.Time       `db:"created_at" json:"created_at"`
}

type messageRow struct {
	Message
	CitationsText string `db:"citations"`
}

func (r messageRow) record() Message {
	m := r.Message
	m.Citations = json.RawMessage(r.CitationsText)
	m.CreatedAt = utc(m.CreatedAt)
	return m
}

const messageCols = `tenant_id, clone_id, conversation_id, id, user_id, role, content, citations, created_at`

var messages = newKeyset("message", "messages", messageCols, "conversation_id", false)

// ValidRole reports whether r is one of the message roles.
func ValidRole(r MessageRole) bool {
	switch r {
	case RoleSystem, RoleUser, RoleAssistant:
		return true
	}
	return false
}

func validateMessage(op string, m *Message) (string, error) {
	if !ValidRole(m.Role) {
		return "", errs.New(errs.InvalidInput, op, "unknown message role %q", truncate(string(m.Role)))
	}
	if err := checkText(op, "content", m.Content, MaxContentBytes, false); err != nil {
		return "", err
	}
	if err := checkUserID(op, m.UserID); err != nil {
		return "", err
	}
	return jsonText(op, "citations", m.Citations, '[')
}

// AppendMessage appends m to conversation m.ConversationID and returns it as stored.
// Its CreatedAt is now, but always after the conversation's previous message (and its
// UpdatedAt, which it moves), so a conversation lists in the order its messages were
// appended even when the clock steps back or two appends share a microsecond. It runs
// in one transaction (on a *clonesql.DB it opens one, on a transaction's Querier it joins it)
// that locks the conversation, serializing concurrent appends. A conversation that is
// missing or another clone's is clone.ErrNotFound, and audited.
func AppendMessage(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, m Message) (Message, error) {
	const op = "records.AppendMessage"
	if err := begin(ctx, q, cc, op); err != nil {
		return Message{}, err
	}
	if err := checkScope(ctx, q, cc, op, m.TenantID, m.CloneID); err != nil {
		return Message{}, err
	}
	if err := checkID(op, "conversation ID", m.ConversationID); err != nil {
		return Message{}, err
	}
	cites, err := validateMessage(op, &m)
	if err != nil {
		return Message{}, err
	}
	if m.ID, err = newID(op, "message ID", m.ID); err != nil {
		return Message{}, err
	}
	m.TenantID, m.CloneID = cc.TenantID(), cc.CloneID()
	err = inTx(ctx, q, cc, func(q clonesql.Querier) error {
		// A no-op update locks the conversation (PostgreSQL) and returns its UpdatedAt.
		var last time.Time
		err := q.Get(ctx, cc, &last, `UPDATE conversations SET updated_at = updated_at
			WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id RETURNING updated_at`,
			map[string]any{"id": m.ConversationID})
		if err := found(ctx, q, cc, op, "conversation", m.ConversationID, err); err != nil {
			return err
		}
		m.CreatedAt = now()
		if last = last.UTC().Truncate(time.Microsecond); !m.CreatedAt.After(last) {
			m.CreatedAt = last.Add(time.Microsecond)
		}
		if _, err := q.Exec(ctx, cc, `INSERT INTO messages (tenant_id, clone_id, conversation_id, id, user_id, role,
			content, citations, created_at) VALUES (:tenant_id, :clone_id, :conversation_id, :id, :user_id, :role,
			:content, :citations, :created_at)`, map[string]any{
			"conversation_id": m.ConversationID, "id": m.ID, "user_id": m.UserID, "role": string(m.Role),
			"content": m.Content, "citations": cites, "created_at": m.CreatedAt,
		}); err != nil {
			return err
		}
		_, err = q.Exec(ctx, cc, `UPDATE conversations SET updated_at = :created_at
			WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
			map[string]any{"id": m.ConversationID, "created_at": m.CreatedAt})
		return err
	})
	if err != nil {
		return Message{}, err
	}
	m.Citations = json.RawMessage(cites)
	return m, nil
}

// GetMessage returns message id of the clone in cc. A message that is missing or
// another clone's is clone.ErrNotFound, and audited.
func GetMessage(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) (Message, error) {
	const op = "records.GetMessage"
	var r messageRow
	err := getByID(ctx, q, cc, op, "message",
		`SELECT `+messageCols+` FROM messages WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, &r, id)
	if err != nil {
		return Message{}, err
	}
	return r.record(), nil
}

// UpdateMessage replaces the content and citations of message m.ID (its conversation,
// role and CreatedAt are kept; m.Role must still be valid) and returns it as stored. A
// message that is missing or another clone's is clone.ErrNotFound, and audited.
func UpdateMessage(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, m Message) (Message, error) {
	const op = "records.UpdateMessage"
	if err := begin(ctx, q, cc, op); err != nil {
		return Message{}, err
	}
	if err := checkScope(ctx, q, cc, op, m.TenantID, m.CloneID); err != nil {
		return Message{}, err
	}
	if err := checkID(op, "message ID", m.ID); err != nil {
		return Message{}, err
	}
	cites, err := validateMessage(op, &m)
	if err != nil {
		return Message{}, err
	}
	var r messageRow
	err = q.Get(ctx, cc, &r, `UPDATE messages SET content = :content, citations = :citations
		WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id
		RETURNING `+messageCols, map[string]any{"id": m.ID, "content": m.Content, "citations": cites})
	if err := found(ctx, q, cc, op, "message", m.ID, err); err != nil {
		return Message{}, err
	}
	return r.record(), nil
}

// DeleteMessage deletes message id. A message that is missing or another clone's is
// clone.ErrNotFound, and audited.
func DeleteMessage(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, id uuid.UUID) error {
	return deleteByID(ctx, q, cc, "records.DeleteMessage", "message", "messages", id)
}

// ListMessages returns one page of the messages of conversation conversationID in the
// order they were appended (newest first with opts.Descending). A conversation that is
// missing or another clone's is clone.ErrNotFound, and audited (it is looked up only
// when the page would be empty).
func ListMessages(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, conversationID uuid.UUID, opts *ListOptions) (Page[Message], error) {
	const op = "records.ListMessages"
	if err := begin(ctx, q, cc, op); err != nil {
		return Page[Message]{}, err
	}
	if err := checkID(op, "conversation ID", conversationID); err != nil {
		return Page[Message]{}, err
	}
	p, err := listPage(ctx, q, cc, op, messages, conversationID, opts, messageRow.record,
		func(m Message) (time.Time, uuid.UUID, int64) { return m.CreatedAt, m.ID, 0 })
	if err != nil {
		return Page[Message]{}, err
	}
	if len(p.Items) == 0 {
		if err := parentExists(ctx, q, cc, op, "conversation", "conversations", conversationID); err != nil {
			return Page[Message]{}, err
		}
	}
	return p, nil
}

// CountMessages returns the number of messages of conversation conversationID. A
// conversation that is missing or another clone's is clone.ErrNotFound, and audited.
func CountMessages(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, conversationID uuid.UUID) (int64, error) {
	const op = "records.CountMessages"
	if err := begin(ctx, q, cc, op); err != nil {
		return 0, err
	}
	if err := checkID(op, "conversation ID", conversationID); err != nil {
		return 0, err
	}
	n, err := count(ctx, q, cc, messages, conversationID)
	if err == nil && n == 0 {
		err = parentExists(ctx, q, cc, op, "conversation", "conversations", conversationID)
	}
	return n, err
}
