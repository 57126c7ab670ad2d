package clone

import (
	"github.com/google/uuid"
)

// ParseID parses a tenant or clone ID that came from outside the process (a URL path, a
// header, a JSON body, a token claim).
//
// Only the canonical form is accepted: 36 characters, lower-case hexadecimal digits in
// groups of 8-4-4-4-12 separated by hyphens, exactly as uuid.UUID.String prints it.
// Upper case, braces, the "urn:uuid:" prefix, the 32-digit form without hyphens,
// surrounding whitespace, the nil UUID and the max UUID (all ones) are rejected with
// [ErrInvalidID]. The strict form gives every ID exactly one spelling, so two strings that
// differ can never name the same clone (and one clone never hides behind two spellings
// in keys, caches or logs).
func ParseID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.Nil, invalidID(s, "want 36 characters in the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return uuid.Nil, invalidID(s, "hyphens must be at positions 9, 14, 19 and 24")
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return uuid.Nil, invalidID(s, "only lower-case hexadecimal digits are accepted")
			}
		}
	}
	id, err := uuid.Parse(s)
	if err != nil { // unreachable after the checks above; kept so a uuid change cannot widen the form
		return uuid.Nil, invalidID(s, err.Error())
	}
	if err := ValidateID(id); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

// ValidateID reports whether id may name a tenant or clone: the nil UUID and the max
// UUID are refused with [ErrInvalidID].
func ValidateID(id uuid.UUID) error {
	if id == uuid.Nil {
		return newError(ErrInvalidID, "clone.ValidateID", "the nil UUID is not an ID")
	}
	if id == uuid.Max {
		return newError(ErrInvalidID, "clone.ValidateID", "the max UUID is not an ID")
	}
	return nil
}

// NewID returns a new random (version 4) ID.
func NewID() uuid.UUID { return uuid.New() }

func invalidID(s, why string) error {
	// The input is not echoed in full: it may be attacker-controlled and very long.
	const max = 40
	shown := s
	if len(shown) > max {
		shown = shown[:max] + "…"
	}
	return newError(ErrInvalidID, "clone.ParseID", "%q: %s", shown, why)
}
