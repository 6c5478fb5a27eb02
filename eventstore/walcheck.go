package eventstore

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble replays its write-ahead logs (WALs) at Open and stops at the first
// chunk that does not verify, taking it for the torn tail a crash leaves.
// It can only tell damage from a torn tail when a later chunk promises that
// the log was synced beyond the damage, which needs the WAL sync chunks of
// format FormatWALSyncChunks (an irreversible upgrade that also changes the
// table format), and even then not for the last synced batch. Without this
// check a single flipped byte in the middle of the live WAL made Open drop,
// without a word, every acknowledged append after it.
//
// So before Pebble reads a log, the store reads it itself (scanLog): if a
// chunk does not verify and anything that verifies follows it (a chunk of
// the same log, or the trailer Pebble writes when it closes a log cleanly),
// or the log is not the newest, the records after it were written after
// the damage, and it is damage, not a torn tail. Open then fails with a
// *CorruptFileError naming the file and the byte, unless the caller asked
// for recovery (WithRecoverCorruptWAL, Repair): then Pebble is shown the log
// cut before the damaged record, and every newer log as empty, and the
// report says what was dropped. The same check runs on the MANIFEST, which
// Pebble also reads up to the first bad record only; damage there cannot be
// dropped and always fails Open.
//
// The record format (Pebble's package record): the file is a sequence of
// 32 KiB blocks; a block holds whole chunks; a chunk has a header (CRC-32C
// of what follows the length, masked as in LevelDB; payload length; type;
// for the recyclable and WAL sync types the log number, and for the latter
// a synced offset) and a payload; a record is one full chunk or a first,
// middles and a last. A log that Pebble closed ends with an EOF trailer: a
// recyclable full chunk header of length 0 and CRC 0 carrying the next log
// number.

const (
	logBlockSize        = 32 << 10
	legacyHeaderLen     = 7
	recyclableHeaderLen = 11
	walSyncHeaderLen    = 19
	maxChunkType        = 12
	recyclableFullChunk = 5
)

// Chunk positions within a record.
const (
	chunkFull = iota + 1
	chunkFirst
	chunkMiddle
	chunkLast
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, crc32c)
	return (c>>15 | c<<17) + 0xa282ead8
}

// chunkHeaderLen returns the header length of a chunk type, 0 if invalid.
func chunkHeaderLen(typ byte) int {
	switch {
	case typ >= 1 && typ <= 4:
		return legacyHeaderLen
	case typ >= 5 && typ <= 8:
		return recyclableHeaderLen
	case typ >= 9 && typ <= maxChunkType:
		return walSyncHeaderLen
	}
	return 0
}

type chunkStatus int

const (
	chunkOK      chunkStatus = iota
	chunkEnd                 // the end of the file or an EOF trailer
	chunkTrailer             // an EOF trailer (a chunkEnd)
	chunkBad                 // a chunk that does not verify
)

// logScanner reads the chunks of one record log.
type logScanner struct {
	r io.Reader
	// logNum is the log's number, which its recyclable chunks carry; wal
	// says the log is a WAL (recyclable chunks) rather than a MANIFEST.
	logNum   uint32
	wal      bool
	buf      [logBlockSize]byte
	n        int   // valid bytes in buf
	blockOff int64 // file offset of buf[0]
	pos      int   // offset in buf of the next chunk header
	loaded   bool
	last     bool // buf holds the last (possibly short) block
	ioErr    error
}

func newLogScanner(r io.Reader, logNum uint32, wal bool) *logScanner {
	return &logScanner{r: r, logNum: logNum, wal: wal, blockOff: -logBlockSize}
}

// chunk is one verified chunk; payload aliases the scanner's buffer.
type chunk struct {
	off, end int64
	position int
	payload  []byte
}

// offset returns the file offset of the next chunk header.
func (sc *logScanner) offset() int64 { return sc.blockOff + int64(sc.pos) }

func (sc *logScanner) load() bool {
	if sc.loaded && sc.last {
		return false
	}
	if sc.loaded {
		sc.blockOff += logBlockSize
	} else {
		sc.blockOff = 0
	}
	sc.loaded = true
	n, err := io.ReadFull(sc.r, sc.buf[:])
	sc.n, sc.pos = n, 0
	switch {
	case err == nil:
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		sc.last = true
	default:
		sc.ioErr = err
		sc.last, sc.n = true, 0
	}
	return n > 0
}

// next returns the next chunk, the end of the log, or the damage it found
// (with a reason), as Pebble's record reader sees them.
func (sc *logScanner) next() (chunk, chunkStatus, string) {
	for {
		if !sc.loaded || (sc.pos+legacyHeaderLen > sc.n && !sc.last) {
			if !sc.load() {
				return chunk{}, chunkEnd, ""
			}
			continue
		}
		if sc.pos+legacyHeaderLen > sc.n {
			if sc.pos != sc.n {
				return chunk{off: sc.offset()}, chunkBad, fmt.Sprintf("%d stray bytes at the end of the log", sc.n-sc.pos)
			}
			return chunk{off: sc.offset()}, chunkEnd, ""
		}
		h := sc.buf[sc.pos:sc.n]
		sum := binary.LittleEndian.Uint32(h[0:4])
		length := int(binary.LittleEndian.Uint16(h[4:6]))
		typ := h[6]
		off := sc.offset()
		if typ > maxChunkType {
			return chunk{off: off}, chunkBad, fmt.Sprintf("unknown chunk type %d", typ)
		}
		if sum == 0 && length == 0 && typ == 0 {
			// Zeroes: the unused end of a block, or of a preallocated log.
			if len(h) < recyclableHeaderLen || (len(h) < walSyncHeaderLen && allZero(h)) {
				sc.pos = sc.n
				continue
			}
			return chunk{off: off}, chunkBad, "zeroed chunk header"
		}
		hl := chunkHeaderLen(typ)
		if hl == 0 {
			return chunk{off: off}, chunkBad, "chunk type 0"
		}
		if hl > legacyHeaderLen {
			if len(h) < hl {
				return chunk{off: off}, chunkBad, "chunk header cut by the end of the block"
			}
			if n := binary.LittleEndian.Uint32(h[7:11]); n != sc.logNum {
				if sc.wal && n == sc.logNum+1 && typ == recyclableFullChunk && sum == 0 && length == 0 {
					return chunk{off: off}, chunkTrailer, ""
				}
				// Pebble's reader takes any chunk of the next log for the
				// end of this one; only the exact trailer is one here, so
				// that a flipped bit in a log number is not an end.
				return chunk{off: off}, chunkBad, fmt.Sprintf("chunk of log %d", n)
			}
		}
		if hl+length > len(h) {
			return chunk{off: off}, chunkBad, "chunk longer than its block"
		}
		if maskedCRC(h[6:hl+length]) != sum {
			return chunk{off: off}, chunkBad, "chunk checksum mismatch"
		}
		sc.pos += hl + length
		return chunk{off: off, end: sc.offset(), position: int(typ-1)%4 + 1, payload: h[hl : hl+length]}, chunkOK, ""
	}
}

// resync looks, from just after the chunk header at offset bad, for the next
// place where something verifies: a chunk of this log or, in a WAL, an EOF
// trailer. It leaves the scanner there (so that next returns it) and
// reports whether it found one. Chunks never cross blocks, so each block is
// searched byte by byte on its own.
func (sc *logScanner) resync(bad int64) bool {
	start := int(bad-sc.blockOff) + 1
	for {
		for q := start; q+legacyHeaderLen <= sc.n; q++ {
			if sc.verifiesAt(q) {
				sc.pos = q
				return true
			}
		}
		if !sc.load() {
			sc.pos = sc.n
			return false
		}
		start = 0
	}
}

// verifiesAt reports whether a chunk (or, in a WAL, an EOF trailer) of this
// log starts at buf[q].
func (sc *logScanner) verifiesAt(q int) bool {
	h := sc.buf[q:sc.n]
	typ := h[6]
	hl := chunkHeaderLen(typ)
	if sc.wal {
		if hl <= legacyHeaderLen || len(h) < hl {
			return false
		}
		n := binary.LittleEndian.Uint32(h[7:11])
		if n == sc.logNum+1 && typ == recyclableFullChunk &&
			binary.LittleEndian.Uint32(h[0:4]) == 0 && binary.LittleEndian.Uint16(h[4:6]) == 0 {
			return true // an EOF trailer
		}
		if n != sc.logNum {
			return false
		}
	} else if hl != legacyHeaderLen {
		return false
	}
	length := int(binary.LittleEndian.Uint16(h[4:6]))
	if hl+length > len(h) {
		return false
	}
	return maskedCRC(h[6:hl+length]) == binary.LittleEndian.Uint32(h[0:4])
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// logScan is what scanLog found in a record log.
type logScan struct {
	// Records is how many whole records verify before the damage (or the
	// end of the log).
	Records int
	// Bad is the offset of the first chunk that does not verify, -1 if the
	// log verifies to its end; Reason says why.
	Bad    int64
	Reason string
	// Cut is where replay stops: the start of the record holding the bad
	// chunk (everything from Cut on is not replayed).
	Cut int64
	// After is the offset of the first chunk (or EOF trailer) that verifies
	// after Bad, -1 if nothing does: then the damage may be a torn tail.
	After int64
	// Size is the length of the log (set by scanFile); Readable how many
	// bytes after the damage are in records that verify (handed to the
	// tail function).
	Size, Readable int64
}

// scanLog reads a record log. If tail is not nil, it is handed every whole
// record that verifies after the damage, in order (it must copy what it
// keeps).
func scanLog(r io.Reader, logNum uint32, wal bool, tail func(rec []byte)) (logScan, error) {
	return scanLogRecords(r, logNum, wal, nil, tail)
}

// scanLogRecords is scanLog that also hands head, if not nil, every whole
// record that verifies before the damage: given the same function twice,
// it sees every record of a log that is dropped whole.
func scanLogRecords(r io.Reader, logNum uint32, wal bool, head, tail func(rec []byte)) (logScan, error) {
	sc := newLogScanner(r, logNum, wal)
	res := logScan{Bad: -1, Cut: -1, After: -1}
	var rec []byte
	inRec, damaged := false, false
	recStart := int64(0)
	for {
		c, st, why := sc.next()
		if sc.ioErr != nil {
			return res, sc.ioErr
		}
		if st == chunkOK {
			switch {
			case !inRec && (c.position == chunkMiddle || c.position == chunkLast):
				// Pebble's reader skips these when it looks for a record's
				// start; so does the scan.
				continue
			case inRec && (c.position == chunkFull || c.position == chunkFirst):
				st, why = chunkBad, "record interrupted by another"
			default:
				if !inRec {
					inRec, recStart, rec = true, c.off, rec[:0]
				}
				rec = append(rec, c.payload...)
				if c.position == chunkFull || c.position == chunkLast {
					inRec = false
					if damaged {
						res.Readable += c.end - recStart
						if tail != nil {
							tail(rec)
						}
					} else {
						res.Records++
						if head != nil {
							head(rec)
						}
					}
				}
				continue
			}
		}
		if (st == chunkEnd || st == chunkTrailer) && !inRec {
			if !damaged {
				res.Cut = c.off
				if st == chunkEnd {
					res.Cut = sc.offset()
				}
			}
			if st == chunkTrailer && damaged && res.After < 0 {
				res.After = c.off
			}
			break
		}
		// Damage: a chunk that does not verify, a trailer or the end of the
		// file inside a record.
		at := c.off
		if st == chunkEnd {
			at = sc.offset()
			why = "log ends inside a record"
		} else if st == chunkTrailer {
			why = "EOF trailer inside a record"
		}
		if !damaged {
			damaged = true
			res.Bad, res.Reason, res.Cut = at, why, at
			if inRec {
				res.Cut = recStart
			}
		} else if res.After < 0 {
			// Resync found this spot, yet it is not the start of a readable
			// record; it still verifies, so it counts.
			res.After = at
		}
		inRec = false
		if st == chunkEnd || !sc.resync(at) {
			break
		}
		if res.After < 0 {
			res.After = sc.offset()
		}
		if tail == nil {
			break // enough is known
		}
	}
	if sc.ioErr != nil {
		return res, sc.ioErr
	}
	if sc.last {
		res.Size = sc.blockOff + int64(sc.n)
	}
	return res, nil
}

// walNumber returns the number of a WAL file name ("000123.log").
func walNumber(base string) (uint64, bool) {
	stem, ok := strings.CutSuffix(base, ".log")
	if !ok || stem == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(stem, 10, 64)
	return n, err == nil
}

// openGuard checks the logs Pebble opens for reading while a store opens.
type openGuard struct {
	fs vfs.FS
	// recovering: cut damaged WALs instead of failing.
	recovering bool
	now        func() time.Time
	active     atomic.Bool

	mu struct {
		sync.Mutex
		err error // the damage that fails Open
		// rec is what recovery dropped; once set, every newer WAL is
		// dropped whole.
		rec     *walRecovery
		backup  string
		backups []string
	}
}

// walRecovery is what a recovery dropped, as read from the logs.
type walRecovery struct {
	wal     string
	scan    logScan
	later   []string
	dropped int64 // bytes, in all logs
	tail    tailContent
}

// guardFS is the filesystem Pebble opens through: the store's, with the
// check of the logs Pebble reads while it opens.
type guardFS struct {
	vfs.FS
	g *openGuard
}

// Open opens a file; a WAL or MANIFEST opened while the store opens is
// checked first.
func (fs guardFS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.Open(name, opts...)
	if err != nil || !fs.g.active.Load() {
		return f, err
	}
	base := fs.FS.PathBase(name)
	if n, ok := walNumber(base); ok {
		return fs.g.checkWAL(name, n, f)
	}
	if strings.HasPrefix(base, "MANIFEST-") {
		return fs.g.checkManifest(name, f)
	}
	return f, nil
}

// Unwrap returns the store's filesystem.
func (fs guardFS) Unwrap() vfs.FS { return fs.FS }

func (g *openGuard) scanFile(name string, num uint32, wal bool, head, tail func([]byte)) (logScan, error) {
	f, err := g.fs.Open(name)
	if err != nil {
		return logScan{}, err
	}
	defer f.Close()
	res, err := scanLogRecords(f, num, wal, head, tail)
	if err != nil {
		return res, err
	}
	fi, err := f.Stat()
	if err != nil {
		return res, err
	}
	res.Size = fi.Size()
	return res, nil
}

func (g *openGuard) checkManifest(name string, f vfs.File) (vfs.File, error) {
	scan, err := g.scanFile(name, 0, false, nil, nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eventstore: check %s: %w", name, err)
	}
	if scan.Bad < 0 || scan.After < 0 {
		return f, nil // intact, or a torn tail
	}
	f.Close()
	err = &CorruptFileError{Path: name, Offset: scan.Bad, Reason: fmt.Sprintf(
		"manifest record damaged (%s) and followed by records that verify (at byte %d): the store's file list is lost from there; restore the directory from a backup",
		scan.Reason, scan.After)}
	g.mu.Lock()
	g.mu.err = cmp.Or(g.mu.err, err)
	g.mu.Unlock()
	return nil, err
}

func (g *openGuard) checkWAL(name string, num uint64, f vfs.File) (vfs.File, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rec := g.mu.rec; rec != nil {
		// A newer log than the damaged one: its writes came after the
		// damage, and go with it, every one.
		scan, err := g.scanFile(name, uint32(num), true, rec.tail.addBatch, rec.tail.addBatch)
		if err == nil {
			err = g.backupLocked(name)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("eventstore: recover %s: %w", name, err)
		}
		rec.later = append(rec.later, name)
		rec.dropped += scan.Size
		rec.tail.readable += scanReadable(scan)
		return &limitedFile{File: f, limit: 0}, nil
	}
	// When recovering, the scan also decodes what the damage would drop,
	// so that the log is read once.
	rec := &walRecovery{wal: name}
	var tail func([]byte)
	if g.recovering {
		tail = rec.tail.addBatch
	}
	scan, err := g.scanFile(name, uint32(num), true, nil, tail)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eventstore: check %s: %w", name, err)
	}
	if scan.Bad < 0 {
		return f, nil
	}
	newer, err := g.newerWAL(name, num)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("eventstore: check %s: %w", name, err)
	}
	if scan.After < 0 && newer == "" {
		return f, nil // a torn tail: the unsynced end of the newest log
	}
	var why string
	if scan.After >= 0 {
		why = fmt.Sprintf("write-ahead log record damaged (%s), and the log goes on verifying at byte %d", scan.Reason, scan.After)
	} else {
		why = fmt.Sprintf("write-ahead log ends damaged (%s) though a newer log (%s) follows it", scan.Reason, g.fs.PathBase(newer))
	}
	if !g.recovering {
		f.Close()
		err := &CorruptFileError{Path: name, Offset: scan.Bad, Reason: why +
			": the writes logged from there on would be lost; open with WithRecoverCorruptWAL or run `muninn repair` to drop them and see which"}
		g.mu.err = cmp.Or[error](g.mu.err, err)
		return nil, err
	}
	if err := g.backupLocked(name); err != nil {
		f.Close()
		return nil, fmt.Errorf("eventstore: recover %s: %w", name, err)
	}
	rec.scan = scan
	rec.tail.reason = scan.Reason
	if scan.After < 0 {
		rec.tail.reason += ", though a newer log follows it"
	}
	rec.dropped = scan.Size - scan.Cut
	rec.tail.readable += scan.Readable
	g.mu.rec = rec
	return &limitedFile{File: f, limit: scan.Cut}, nil
}

func scanReadable(s logScan) int64 {
	if s.Bad < 0 {
		return s.Size
	}
	return s.Cut + s.Readable
}

// newerWAL returns a WAL in name's directory numbered above num, "" if
// there is none.
func (g *openGuard) newerWAL(name string, num uint64) (string, error) {
	dir := g.fs.PathDir(name)
	names, err := g.fs.List(dir)
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if m, ok := walNumber(n); ok && m > num {
			return g.fs.PathJoin(dir, n), nil
		}
	}
	return "", nil
}

// backupLocked copies a log into the recovery's backup directory before
// Pebble replays (and later deletes or reuses) it.
func (g *openGuard) backupLocked(name string) error {
	if g.mu.backup == "" {
		stamp := g.now().UTC().Format("20060102T150405Z")
		dir := g.fs.PathJoin(g.fs.PathDir(name), "recovered-wal-"+stamp)
		for i := 2; ; i++ {
			if _, err := g.fs.Stat(dir); errors.Is(err, os.ErrNotExist) {
				break
			}
			dir = g.fs.PathJoin(g.fs.PathDir(name), fmt.Sprintf("recovered-wal-%s-%d", stamp, i))
		}
		if err := g.fs.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		g.mu.backup = dir
	}
	dst := g.fs.PathJoin(g.mu.backup, g.fs.PathBase(name))
	src, err := g.fs.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := g.fs.Create(dst, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	if err := errors.Join(out.Sync(), out.Close()); err != nil {
		return err
	}
	d, err := g.fs.OpenDir(g.mu.backup)
	if err != nil {
		return err
	}
	g.mu.backups = append(g.mu.backups, dst)
	return errors.Join(d.Sync(), d.Close())
}

// limitedFile shows Pebble a file cut at limit bytes.
type limitedFile struct {
	vfs.File
	limit, off int64
}

// Read reads up to the cut.
func (f *limitedFile) Read(p []byte) (int, error) {
	if f.off >= f.limit {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), f.limit-f.off)]
	n, err := f.File.Read(p)
	f.off += int64(n)
	return n, err
}

// ReadAt reads up to the cut.
func (f *limitedFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.limit {
		return 0, io.EOF
	}
	short := int64(len(p)) > f.limit-off
	p = p[:min(int64(len(p)), f.limit-off)]
	n, err := f.File.ReadAt(p, off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// Stat reports the cut length.
func (f *limitedFile) Stat() (vfs.FileInfo, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return nil, err
	}
	return limitedInfo{fi, f.limit}, nil
}

type limitedInfo struct {
	vfs.FileInfo
	size int64
}

func (i limitedInfo) Size() int64 { return i.size }
