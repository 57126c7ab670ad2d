package migrate

// PerRowCalls exposes perRowCalls to the external tests.
var PerRowCalls = perRowCalls
