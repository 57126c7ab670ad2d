module github.com/cloneiso/cloneiso/vectorstore/internal/bench

go 1.26.0

require github.com/cloneiso/cloneiso v0.0.0

require golang.org/x/sys v0.50.0

require (
	github.com/google/uuid v1.6.0 // indirect
	github.com/philippgille/chromem-go v0.7.0
)

replace github.com/cloneiso/cloneiso => ../../..
