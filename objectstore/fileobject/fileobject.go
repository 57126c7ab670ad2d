// Package fileobject is the embedded, filesystem-backed driver of package objectstore:
// the default when no S3-compatible server is configured, and what examples and quick
// tests use.
//
// Objects live under dir/objects/{key}; each file holds the content followed by a small
// trailer with the content type, metadata and ETag, so one rename publishes an object
// atomically: writes go to a temporary file under dir/tmp, are synced and renamed into
// place. A name cannot be both an object and a "directory" of other objects
// ("a" and "a/b"): the second write fails with clone.ErrConflict. Listing walks the
// clone's directory and sorts the keys for every page, which suits the embedded use
// (thousands of objects per clone), not millions.
//
// # Durability
//
// A Put (and a Copy, and an upload through a signed link) that returns without error
// has survived a process kill and a power loss: the content and trailer are written to
// a temporary file that is fsynced, the object's directory (and any directory created
// for it) is created and its parent fsynced, the file is renamed into place and the
// directory fsynced. Until the rename a crash leaves only a temporary file (removed a
// day later); after it, readers see the whole new object, never a partial one. A
// Delete that returns has fsynced the directory, so a deleted object (an offboarded
// clone's, say) does not come back after a power loss. Durability assumes a local
// filesystem that honours fsync (not every network filesystem does).
//
// Signed URLs and upload tickets are HMAC-SHA256-signed links to an [http.Handler]
// returned by [NewHandler], which the host mounts at Options.BaseURL. They follow the
// same rules as S3's: they name one key inside one clone's prefix, carry their expiry
// inside the signature, and the handler refuses a tampered or expired link with 403.
package fileobject

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/internal/faultpoint"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

// Options configure the filesystem driver. A nil *Options means defaults: no signed
// URLs or upload tickets (they need SigningKey and BaseURL).
type Options struct {
	// SigningKey is the HMAC key of signed URLs and upload tickets: at least 32 random
	// bytes, the same for [OpenBucket] and [NewHandler], kept secret.
	SigningKey []byte
	// BaseURL is where the host mounts the handler of [NewHandler], e.g.
	// "https://files.example.com/objects". Signed URLs are BaseURL + "/" + key.
	BaseURL string
	// MaxPutSize caps uploads through signed PUT URLs (which, as on S3, carry no size
	// limit of their own). Zero means 5 GiB.
	MaxPutSize int64
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Bucket configures the portable type (audit sink, URL lifetime cap).
	Bucket *objectstore.Options
}

// OpenBucket returns a bucket stored in directory dir, creating it if needed.
func OpenBucket(dir string, opts *Options) (*objectstore.Bucket, error) {
	d, err := newFS(dir, opts)
	if err != nil {
		return nil, err
	}
	var bo *objectstore.Options
	if opts != nil {
		bo = opts.Bucket
	}
	return objectstore.NewBucket(d, bo)
}

// OpenDriver returns the raw driver (for the conformance suite and for wrapping).
// Applications use [OpenBucket].
func OpenDriver(dir string, opts *Options) (driver.Bucket, error) { return newFS(dir, opts) }

// fsBucket reaches every file through an [os.Root] opened on the store's directory, so
// no name, symlink or ".." can make it read or write outside that directory, on any
// operating system, whatever the checks above it let through.
type fsBucket struct {
	root *os.Root // the store's directory: objects/{key} and tmp/
	opts Options
}

const (
	objectsDir = "objects"
	tmpDir     = "tmp"
)

func newFS(dir string, opts *Options) (*fsBucket, error) {
	const op = "fileobject.OpenBucket"
	if dir == "" {
		return nil, errs.New(errs.InvalidInput, op, "empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "directory")
	}
	b := &fsBucket{}
	if opts != nil {
		b.opts = *opts
	}
	if k := b.opts.SigningKey; k != nil && len(k) < 32 {
		return nil, errs.New(errs.InvalidInput, op, "SigningKey must be at least 32 bytes")
	}
	b.opts.BaseURL = strings.TrimSuffix(b.opts.BaseURL, "/")
	if b.opts.MaxPutSize == 0 {
		b.opts.MaxPutSize = 5 << 30
	}
	if b.opts.Now == nil {
		b.opts.Now = time.Now
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "creating the store directory")
	}
	if b.root, err = os.OpenRoot(abs); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "opening the store directory")
	}
	for _, d := range []string{objectsDir, tmpDir} {
		if err := b.root.MkdirAll(d, 0o700); err != nil {
			b.root.Close()
			return nil, errs.Wrap(errs.Unavailable, op, err, "creating the store directory")
		}
	}
	b.removeStaleTemp()
	return b, nil
}

// removeStaleTemp removes temporary files left by writers that crashed more than a
// day ago (a live writer's file is younger than that).
func (b *fsBucket) removeStaleTemp() {
	entries, err := fs.ReadDir(b.root.FS(), tmpDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			b.root.Remove(tmpDir + "/" + e.Name())
		}
	}
}

// errBadKey guards against keys the portable type would never send.
var errBadKey = errors.New("fileobject: invalid key")

// path maps a key to its file's name inside the root, refusing anything that could
// leave the objects tree (the root refuses it again when the file is opened).
func (b *fsBucket) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00") {
		return "", errBadKey
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(key, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", errBadKey
		}
	}
	p := filepath.Join(objectsDir, filepath.FromSlash(key))
	if !filepath.IsLocal(p) {
		return "", errBadKey
	}
	return p, nil
}

// createTemp creates a new temporary file in tmp/ inside the root.
func (b *fsBucket) createTemp() (*os.File, string, error) {
	for range 100 {
		name := filepath.Join(tmpDir, "put-"+rand.Text())
		f, err := b.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, name, err
	}
	return nil, "", errs.New(errs.Unavailable, "fileobject.Put", "cannot create a temporary file")
}

const magic = "\nCLONEISO-OBJ1"

type trailer struct {
	ContentType string            `json:"ct,omitempty"`
	Metadata    map[string]string `json:"md,omitempty"`
	ETag        string            `json:"etag"`
}

// Put writes r to a temporary file, appends the trailer, syncs and renames it into
// place.
func (b *fsBucket) Put(ctx context.Context, scope, key string, r io.Reader, opts *driver.WriteOptions) (*driver.Attributes, error) {
	if err := driver.CheckKey("fileobject.Put", scope, key); err != nil {
		return nil, err
	}
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &driver.WriteOptions{Size: -1}
	}
	f, tmpName, err := b.createTemp()
	if err != nil {
		return nil, err
	}
	renamed := false
	defer func() {
		if !renamed {
			b.root.Remove(tmpName)
		}
	}()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 64<<10)
	_, err = io.Copy(w, ctxReader{ctx, r})
	if err == nil {
		tr := trailer{ContentType: opts.ContentType, Metadata: opts.Metadata, ETag: hex.EncodeToString(h.Sum(nil)[:16])}
		err = writeTrailer(w, tr)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	faultpoint.Hit("fileobject.put.synced")
	// A concurrent Delete may remove an empty parent directory between creating it and
	// the rename; retry a few times.
	for attempt := 0; ; attempt++ {
		if err = b.mkdirAllSynced(filepath.Dir(p)); err == nil {
			err = b.root.Rename(tmpName, p)
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	renamed = true
	faultpoint.Hit("fileobject.put.renamed")
	// Make the rename itself durable: until its directory is synced, a power loss can
	// undo it. A failure here fails the Put (which is safe to retry).
	if err := b.syncDir(filepath.Dir(p)); err != nil {
		return nil, err
	}
	return b.head(key)
}

func writeTrailer(w io.Writer, tr trailer) error {
	js, err := json.Marshal(tr)
	if err != nil {
		return err
	}
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(js)))
	_, err = w.Write(slices.Concat(js, l[:], []byte(magic)))
	return err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// open opens key's file and reads its trailer.
func (b *fsBucket) open(key string) (*os.File, *driver.Attributes, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, nil, err
	}
	f, err := b.root.Open(p)
	if err != nil {
		return nil, nil, err
	}
	a, err := readAttrs(f, key)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, a, nil
}

var errNotObject = errors.New("fileobject: not an object")

func readAttrs(f *os.File, key string) (*driver.Attributes, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fs.ErrNotExist // a "directory" of other objects is not an object
	}
	size := st.Size()
	tail := int64(4 + len(magic))
	if size < tail {
		return nil, errNotObject
	}
	buf := make([]byte, tail)
	if _, err := f.ReadAt(buf, size-tail); err != nil {
		return nil, err
	}
	if string(buf[4:]) != magic {
		return nil, errNotObject
	}
	tl := int64(binary.BigEndian.Uint32(buf[:4]))
	if tl > size-tail {
		return nil, errNotObject
	}
	js := make([]byte, tl)
	if _, err := f.ReadAt(js, size-tail-tl); err != nil {
		return nil, err
	}
	var tr trailer
	if err := json.Unmarshal(js, &tr); err != nil {
		return nil, errNotObject
	}
	return &driver.Attributes{
		Key: key, Size: size - tail - tl, ContentType: tr.ContentType, Metadata: tr.Metadata,
		ModTime: st.ModTime(), ETag: tr.ETag,
	}, nil
}

type fileReader struct {
	*io.SectionReader
	f     *os.File
	attrs *driver.Attributes
}

func (r *fileReader) Close() error                   { return r.f.Close() }
func (r *fileReader) Attributes() *driver.Attributes { return r.attrs }

func (b *fsBucket) Get(_ context.Context, scope, key string, offset, length int64) (driver.Reader, error) {
	if err := driver.CheckKey("fileobject.Get", scope, key); err != nil {
		return nil, err
	}
	f, a, err := b.open(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || (offset > 0 && offset >= a.Size) {
		f.Close()
		return nil, errRange
	}
	n := a.Size - offset
	if length >= 0 && length < n {
		n = length
	}
	return &fileReader{SectionReader: io.NewSectionReader(f, offset, n), f: f, attrs: a}, nil
}

var errRange = errors.New("fileobject: offset outside the object")

func (b *fsBucket) Head(_ context.Context, scope, key string) (*driver.Attributes, error) {
	if err := driver.CheckKey("fileobject.Head", scope, key); err != nil {
		return nil, err
	}
	return b.head(key)
}

func (b *fsBucket) head(key string) (*driver.Attributes, error) {
	f, a, err := b.open(key)
	if err != nil {
		return nil, err
	}
	f.Close()
	return a, nil
}

// List walks the directory holding prefix, sorts the keys and returns the page after
// the token (the last key of the previous page).
func (b *fsBucket) List(_ context.Context, scope, prefix string, pageSize int, token string) (*driver.ListPage, error) {
	if err := driver.CheckPrefix("fileobject.List", scope, prefix); err != nil {
		return nil, err
	}
	keys, err := b.keys(prefix)
	if err != nil {
		return nil, err
	}
	i, _ := slices.BinarySearch(keys, token)
	if i < len(keys) && keys[i] == token {
		i++
	}
	if token == "" {
		i = 0
	}
	page := &driver.ListPage{}
	for ; i < len(keys) && len(page.Objects) < pageSize; i++ {
		a, err := b.head(keys[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the walk
		}
		if err != nil {
			return nil, err
		}
		page.Objects = append(page.Objects, a)
	}
	if i < len(keys) && len(page.Objects) > 0 {
		page.NextPageToken = page.Objects[len(page.Objects)-1].Key
	}
	return page, nil
}

// keys returns the sorted keys of the regular files whose key starts with prefix.
func (b *fsBucket) keys(prefix string) ([]string, error) {
	dir := objectsDir
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if _, err := b.path(prefix[:i+1]); err != nil {
			return nil, err
		}
		dir = objectsDir + "/" + strings.TrimSuffix(prefix[:i+1], "/")
	}
	var keys []string
	err := fs.WalkDir(b.root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if k := strings.TrimPrefix(p, objectsDir+"/"); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(keys)
	return keys, nil
}

func (b *fsBucket) Delete(_ context.Context, scope, key string) error {
	if err := driver.CheckKey("fileobject.Delete", scope, key); err != nil {
		return err
	}
	return b.delete(key)
}

func (b *fsBucket) delete(key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if st, err := b.root.Lstat(p); err != nil {
		return err
	} else if !st.Mode().IsRegular() {
		return fs.ErrNotExist
	}
	if err := b.root.Remove(p); err != nil {
		return err
	}
	faultpoint.Hit("fileobject.delete.removed")
	// A removal is durable once its directory is synced: until then a power loss can
	// bring the object back (a deleted clone's data must stay deleted).
	if err := b.syncDir(filepath.Dir(p)); err != nil {
		return err
	}
	b.pruneDirs(filepath.Dir(p))
	return nil
}

// syncDir makes the creation, renaming or removal of entries of dir (a name inside
// the root) durable.
func (b *fsBucket) syncDir(dir string) error {
	d, err := b.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// mkdirAllSynced creates dir (a name inside the objects tree) and its missing parents,
// syncing the parent of each directory it creates so that the new entries survive a
// power loss.
func (b *fsBucket) mkdirAllSynced(dir string) error {
	if !strings.HasPrefix(dir, objectsDir+string(filepath.Separator)) {
		return b.root.MkdirAll(dir, 0o700)
	}
	if st, err := b.root.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if err := b.mkdirAllSynced(parent); err != nil {
		return err
	}
	if err := b.root.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		return err
	}
	return b.syncDir(parent)
}

// pruneDirs removes now-empty parent directories up to the objects root, so that a
// deleted "directory" can become an object name again.
func (b *fsBucket) pruneDirs(dir string) {
	for strings.HasPrefix(dir, objectsDir+string(filepath.Separator)) {
		if b.root.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

func (b *fsBucket) Copy(ctx context.Context, scope, dst, src string) error {
	if err := driver.CheckKey("fileobject.Copy", scope, dst); err != nil {
		return err
	}
	if err := driver.CheckKey("fileobject.Copy", scope, src); err != nil {
		return err
	}
	f, a, err := b.open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = b.Put(ctx, scope, dst, io.NewSectionReader(f, 0, a.Size), &driver.WriteOptions{ContentType: a.ContentType, Metadata: a.Metadata, Size: a.Size})
	return err
}

// DeleteAll removes every file under prefix and verifies that none is left. The
// filesystem keeps no versions and no partial uploads (those live in dir/tmp under
// random names and are removed by the writer).
func (b *fsBucket) DeleteAll(_ context.Context, scope, prefix string) (*driver.DeleteAllResult, error) {
	if err := driver.CheckPrefix("fileobject.DeleteAll", scope, prefix); err != nil {
		return nil, err
	}
	keys, err := b.keys(prefix)
	if err != nil {
		return nil, err
	}
	res := &driver.DeleteAllResult{}
	for _, k := range keys {
		if err := b.delete(k); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, err
		}
		res.Objects++
	}
	left, err := b.keys(prefix)
	if err != nil {
		return res, err
	}
	if len(left) > 0 {
		return res, errs.New(errs.Conflict, "fileobject.DeleteAll", "%d objects left after deleting (concurrent writes?)", len(left))
	}
	return res, nil
}

// ErrorKind classifies filesystem errors.
func (b *fsBucket) ErrorKind(err error) error {
	switch {
	case errors.Is(err, driver.ErrOutOfScope):
		return clone.ErrIsolationViolation
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errNotObject):
		return clone.ErrNotFound
	case errors.Is(err, errBadKey), errors.Is(err, errRange):
		return clone.ErrInvalidInput
	case errors.Is(err, errUnsigned):
		return clone.ErrUnsupported
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR), errors.Is(err, fs.ErrExist),
		errors.Is(err, syscall.ENOTEMPTY):
		return clone.ErrConflict
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return clone.ErrUnavailable
	case errors.Is(err, fs.ErrPermission):
		return clone.ErrUnavailable
	}
	return nil
}

// As supports no types: there is no vendor client.
func (b *fsBucket) As(any) bool { return false }

// ErrorAs supports *fs.PathError and *os.LinkError.
func (b *fsBucket) ErrorAs(err error, i any) bool {
	switch t := i.(type) {
	case **fs.PathError:
		return errors.As(err, t)
	case **os.LinkError:
		return errors.As(err, t)
	}
	return false
}

func (b *fsBucket) Close() error { return b.root.Close() }
