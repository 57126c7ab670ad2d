package legacy

import "context"

// SetHook makes the migration call fn at its named points (see Config.at); an error fn
// returns aborts the step there, as a crash would.
func SetHook(c *Config, fn func(ctx context.Context, point string, n int) error) { c.hook = fn }
