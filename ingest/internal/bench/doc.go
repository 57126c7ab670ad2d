// Package bench compares cloneiso's chunker with langchaingo's recursive character
// splitter on the same corpus, and measures end-to-end ingestion throughput. It is a
// separate module so that langchaingo stays out of the SDK's go.mod.
//
//	cd ingest/internal/bench && go test -run '^$' -bench . -benchtime 20x -count 5
package bench
