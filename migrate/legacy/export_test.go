package legacy

import "context"

// SetHook makes the migration call fn at its named points (see Config.at); an error fn
// returns aborts the step there, as a crash would.
func SetHook(c *Config, fn func(ctx context.Context, point string, n int) error) { c.hook = fn }

// MatchKey parses template (with default kind) and matches key against it.
func MatchKey(template, kind, key string) (user, k, name string, ok bool, err error) {
	kt, err := parseTemplate(template, kind)
	if err != nil {
		return "", "", "", false, err
	}
	user, k, name, ok = kt.match(key)
	return user, k, name, ok, nil
}

// Traversal says why key is a path traversal, or "".
func Traversal(key string) string { return traversal(key) }
