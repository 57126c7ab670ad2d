// Package cloneiso is an SDK for serving many AI clones from shared infrastructure
// without ever letting one clone read, write, list, retrieve, presign or delete another
// clone's data.
//
// This root package holds only documentation; the SDK lives in its sub-packages. See
// README.md for the full map.
package cloneiso
