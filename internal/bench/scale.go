package bench

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninn-es/muninn/eventstore"
)

// Defaults of a scale run (RunScale).
const (
	// DefaultScaleEvents is how many events a scale run loads.
	DefaultScaleEvents = 10_000_000
	// QuickScaleEvents replaces it in a quick scale run.
	QuickScaleEvents = 1_000_000
	// DefaultScaleDuration is how long each side of a read measurement of a
	// scale run is timed; QuickScaleDuration in a quick run.
	DefaultScaleDuration = 5 * time.Second
	QuickScaleDuration   = 2 * time.Second
	// EventsPerScaleStream is the mean stream length of a scale run: it
	// loads Events/EventsPerScaleStream streams (1,000,000 at 10M events).
	EventsPerScaleStream = 10
	// minScaleEvents is the smallest scale run.
	minScaleEvents = 1_000
	// maxScaleEvents bounds a scale run.
	maxScaleEvents = 1_000_000_000
)

// ScaleConfig says what RunScale loads and measures. Start from
// DefaultScaleConfig or QuickScaleConfig.
type ScaleConfig struct {
	// Dir is the directory in which RunScale creates its temporary
	// directory, removed before it returns. Empty means the system's
	// temporary directory. A 10M run needs about 8 GiB there.
	Dir string
	// Events is how many events the big store and raw Pebble are loaded
	// with. Default DefaultScaleEvents.
	Events int
	// Duration is how long each side of each read measurement, and of the
	// durable appends, is timed. Default DefaultScaleDuration.
	Duration time.Duration
	// PayloadBytes is the payload size of every event. Default
	// DefaultPayloadBytes.
	PayloadBytes int
	// Partitions is the partition count of the loaded topic. Default
	// DefaultPartitions.
	Partitions int
	// StoreOptions are passed to eventstore.Open for the big and the small
	// store (none by default: the defaults are what is measured).
	StoreOptions []eventstore.Option
	// PebbleOptions, if set, adjusts the stores' Pebble options, as
	// eventstore.WithPebbleOptions does (RunScale sets that option itself,
	// to watch the stores' compactions): for experiments with tuning.
	PebbleOptions func(*pebble.Options)
	// ChildCommand returns the command of the child process that loads the
	// store in dir until it is killed: a process that calls ScaleChild.
	// Nil means this executable with the arguments "bench --scale-child
	// dir", as the muninn binary takes them.
	ChildCommand func(dir string) *exec.Cmd
	// Progress receives a line as each step starts and ends. Nil discards.
	Progress io.Writer
}

// DefaultScaleConfig returns the configuration of a full scale run.
func DefaultScaleConfig() ScaleConfig {
	return ScaleConfig{
		Events:       DefaultScaleEvents,
		Duration:     DefaultScaleDuration,
		PayloadBytes: DefaultPayloadBytes,
		Partitions:   DefaultPartitions,
	}
}

// QuickScaleConfig returns the configuration of a quick scale run: a
// million events, two seconds a side.
func QuickScaleConfig() ScaleConfig {
	c := DefaultScaleConfig()
	c.Events, c.Duration = QuickScaleEvents, QuickScaleDuration
	return c
}

// Validate reports every problem with c at once, each naming its field.
func (c ScaleConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("bench: %s %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Events < minScaleEvents || c.Events > maxScaleEvents {
		bad("Events", "must be between %d and %d, got %d", minScaleEvents, maxScaleEvents, c.Events)
	}
	if c.Duration <= 0 {
		bad("Duration", "must be positive, got %s", c.Duration)
	}
	if c.PayloadBytes < 1 || c.PayloadBytes > maxPayloadBytes {
		bad("PayloadBytes", "must be between 1 and %d, got %d", maxPayloadBytes, c.PayloadBytes)
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		bad("Partitions", "must be between 1 and 1024, got %d", c.Partitions)
	}
	return errors.Join(errs...)
}

// ScaleResult is what one RunScale measured. Its JSON keys (all scale_*,
// besides the environment's) are an interface, as Result's are: keys are
// added, never renamed. Rates are per second of wall-clock time; the store
// and raw Pebble sides of each ratio ran in alternating slices of the same
// work.
type ScaleResult struct {
	Events         float64 `json:"scale_events" label:"events loaded"`
	Streams        float64 `json:"scale_streams" label:"streams (Zipf-distributed lengths)"`
	LongestStream  float64 `json:"scale_longest_stream_events" label:"  events in the longest stream"`
	LoadStoreS     float64 `json:"scale_load_store_s" label:"bulk load of the store, s (NoSync appends, one Sync, Flush)"`
	LoadRawS       float64 `json:"scale_load_raw_s" label:"bulk load of raw Pebble, s (NoSync batches, Flush)"`
	SettleStoreS   float64 `json:"scale_settle_store_s" label:"store: wait after the load until no compaction runs, s"`
	SettleRawS     float64 `json:"scale_settle_raw_s" label:"raw Pebble: the same, s"`
	DiskBytesEvent float64 `json:"scale_disk_bytes_per_event" label:"store: bytes on disk per event"`
	RawDiskBytes   float64 `json:"scale_raw_disk_bytes_per_event" label:"raw Pebble: bytes on disk per event"`
	DiskRatio      float64 `json:"scale_disk_ratio" label:"  store / raw (target <= 1.5)"`

	AggregateLoadsPerS  float64 `json:"scale_aggregate_loads_per_s" label:"aggregate loads (Zipf-popular streams, whole stream), loads/s"`
	AggregateLoadEvents float64 `json:"scale_aggregate_load_events_per_s" label:"  the same, events/s"`
	RawAggregateLoads   float64 `json:"scale_raw_aggregate_load_events_per_s" label:"  raw Pebble, the same loads, events/s"`
	AggregateLoadRatio  float64 `json:"scale_aggregate_load_ratio" label:"  store / raw (target >= 0.8)"`
	StreamReadsPerS     float64 `json:"scale_stream_reads_per_s" label:"stream reads (uniformly random streams), streams/s"`
	StreamReadEvents    float64 `json:"scale_stream_read_events_per_s" label:"  the same, events/s"`
	RawStreamReads      float64 `json:"scale_raw_stream_read_events_per_s" label:"  raw Pebble, the same reads, events/s"`
	StreamReadRatio     float64 `json:"scale_stream_read_ratio" label:"  store / raw"`
	PartitionScan       float64 `json:"scale_partition_scan_events_per_s" label:"ReadPartition, events/s (target >= 1,000,000)"`
	RawScan             float64 `json:"scale_raw_scan_events_per_s" label:"  raw Pebble, iterating its keys in order, in alternating slices, events/s"`
	PartitionScanRatio  float64 `json:"scale_partition_scan_ratio" label:"  store / raw"`

	AppendBig16   float64 `json:"scale_append_durable_16_big_per_s" label:"durable appends, 16 goroutines, on the big store, /s"`
	AppendSmall16 float64 `json:"scale_append_durable_16_small_per_s" label:"  the same on an empty store, in alternating slices, /s"`
	AppendRatio   float64 `json:"scale_append_durable_16_ratio" label:"  big / empty (target >= 0.9)"`

	OpenAfterKillMs float64 `json:"scale_open_after_kill_ms" label:"Open after SIGKILL of a loading process, ms (target < 5,000)"`

	PeakRSSBytes      uint64 `json:"scale_peak_rss_bytes" label:"peak RSS of the store's load (raw Pebble closed) and reads (raw Pebble open)"`
	RSSReadStartBytes uint64 `json:"scale_rss_read_start_bytes" label:"  RSS when the store's reads began"`
	RSSReadEndBytes   uint64 `json:"scale_rss_read_end_bytes" label:"  RSS when they ended"`
	// The second pass repeats the uniform stream reads once the first
	// passes have warmed the caches: RSS that still grew here would grow
	// with the number of streams read, not up to the caches' bounds.
	RSSSecondPassStartBytes uint64  `json:"scale_rss_second_pass_start_bytes" label:"  RSS before a second pass of uniform stream reads"`
	RSSSecondPassEndBytes   uint64  `json:"scale_rss_second_pass_end_bytes" label:"  RSS after it (flat: no growth with the streams read)"`
	SecondPassEvents        float64 `json:"scale_stream_read_second_pass_events_per_s" label:"  the second pass, events/s"`
	StoreCacheBytes         uint64  `json:"scale_store_block_cache_bytes" label:"  store: bytes in its block cache after the reads (its bound: WithCacheSize, 64 MiB)"`
	RawCacheBytes           uint64  `json:"scale_raw_block_cache_bytes" label:"  raw Pebble: the same (64 MiB)"`
	PeakHeapBytes           uint64  `json:"scale_peak_heap_bytes" label:"peak Go heap, whole run"`

	LoadAvgStart float64 `json:"scale_loadavg_start" label:"machine load (1-minute average) at the start"`
	LoadAvgEnd   float64 `json:"scale_loadavg_end" label:"  at the end"`

	// ScaleEnvironment says where and how the numbers were measured.
	ScaleEnvironment
}

// ScaleEnvironment is the context of a ScaleResult; its keys are
// flattened into the ScaleResult's JSON object.
type ScaleEnvironment struct {
	// Cores is runtime.NumCPU().
	Cores int `json:"cores"`
	// GoVersion is runtime.Version().
	GoVersion string `json:"go_version"`
	// GOOSGOARCH is the platform, such as "linux/amd64".
	GOOSGOARCH string `json:"goos_goarch"`
	// DurationS is ScaleConfig.Duration in seconds.
	DurationS float64 `json:"duration_s"`
	// PayloadBytes and Partitions echo the ScaleConfig.
	PayloadBytes int `json:"payload_bytes"`
	Partitions   int `json:"partitions"`
}

// WriteScaleTable writes r as a human-readable table.
func WriteScaleTable(w io.Writer, r ScaleResult) error {
	e := r.ScaleEnvironment
	if _, err := fmt.Fprintf(w, "muninn bench --scale: %d cores, %s %s; %gs a side per measurement; %s events, %d-byte payloads, %d partitions\n\n",
		e.Cores, e.GoVersion, e.GOOSGOARCH, e.DurationS, thousands(r.Events), e.PayloadBytes, e.Partitions); err != nil {
		return err
	}
	return writeFields(w, r)
}

// scaleTopic is the loaded topic of a scale run.
const scaleTopic = "scale"

// killAfterEvents is how many events the child appends before the parent
// kills it: about one memtable of WAL to replay.
const killAfterEvents = 100_000

// scaleWorkload is the data of a scale run: stream lengths with a Zipf
// law over their rank, so that a few streams are very long and most are
// short, and the order in which the loaders append.
type scaleWorkload struct {
	sizes []int // events of stream i
	total int
}

// newScaleWorkload gives events/EventsPerScaleStream streams lengths
// 1 + round(M/(r+1)^a) for rank r, where M = events/200 is the longest
// stream's extra length and a is chosen so that the lengths add up to
// events; the ranks are spread over the stream IDs.
func newScaleWorkload(events int) *scaleWorkload {
	streams := max(events/EventsPerScaleStream, 1)
	m := float64(events) / 200
	sum := func(a float64) int {
		total := 0
		for r := range streams {
			total += 1 + int(m/math.Pow(float64(r+1), a))
		}
		return total
	}
	lo, hi := 0.0, 4.0 // sum falls as a grows
	for range 50 {
		if mid := (lo + hi) / 2; sum(mid) > events {
			lo = mid
		} else {
			hi = mid
		}
	}
	w := &scaleWorkload{sizes: make([]int, streams)}
	// A multiplier coprime to streams spreads the ranks over the IDs.
	mult := 1_000_003
	for gcd(mult, streams) != 1 {
		mult += 2
	}
	for r := range streams {
		w.sizes[(r*mult)%streams] = 1 + int(m/math.Pow(float64(r+1), hi))
	}
	w.total = sum(hi)
	for i := 0; w.total < events; i++ { // what rounding left over
		w.sizes[i%streams]++
		w.total++
	}
	return w
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// scaleKey is the key of stream i: of a fixed width, so that no raw key
// (stream, then version) is a prefix of another stream's.
func scaleKey(i int) string { return fmt.Sprintf("agg-%09d", i) }

// rawKey is raw Pebble's key of an event: the stream key, then the version.
func rawKey(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, stream...)
	return binary.BigEndian.AppendUint64(dst, version)
}

// loadWindow is how many streams one loader appends to in turn, a few
// events at a time, before it moves on: the log interleaves streams as a
// running system's does, while the active streams stay few.
const (
	loadWindow = 1024
	loadChunk  = 8
)

// loadOrder calls f for every append of the load of worker w of n, in
// order: stream i, its first version, and the count of events.
func (wl *scaleWorkload) loadOrder(w, n int, f func(i int, from uint64, count int) bool) {
	var mine []int
	for i := w; i < len(wl.sizes); i += n {
		mine = append(mine, i)
	}
	for start := 0; start < len(mine); start += loadWindow {
		window := mine[start:min(len(mine), start+loadWindow)]
		done := make([]int, len(window))
		for left := len(window); left > 0; {
			left = 0
			for j, i := range window {
				if done[j] == wl.sizes[i] {
					continue
				}
				c := min(loadChunk, wl.sizes[i]-done[j])
				if !f(i, uint64(done[j]), c) {
					return
				}
				done[j] += c
				if done[j] < wl.sizes[i] {
					left++
				}
			}
		}
	}
}

// scaleEnv is the state of one RunScale.
type scaleEnv struct {
	cfg      ScaleConfig
	root     string
	wl       *scaleWorkload
	payloads [][]byte
	// bench reuses the closed loop of Run.
	bench *env
	rss   *rssSampler
	// storeCache is the block cache of the store opened last, to report
	// what it holds.
	storeCache *pebble.Cache
	// busy counts the stores' flushes and compactions in progress.
	busy atomic.Int64
}

// storeOptions returns the options of the stores: the config's, and a
// listener that counts flushes and compactions.
func (e *scaleEnv) storeOptions() []eventstore.Option {
	inc := func() { e.busy.Add(1) }
	dec := func() { e.busy.Add(-1) }
	return append(slices.Clip(e.cfg.StoreOptions), eventstore.WithPebbleOptions(func(o *pebble.Options) {
		if e.cfg.PebbleOptions != nil {
			e.cfg.PebbleOptions(o)
		}
		e.storeCache = o.Cache
		o.EventListener = &pebble.EventListener{
			FlushBegin:      func(pebble.FlushInfo) { inc() },
			FlushEnd:        func(pebble.FlushInfo) { dec() },
			CompactionBegin: func(pebble.CompactionInfo) { inc() },
			CompactionEnd:   func(pebble.CompactionInfo) { dec() },
		}
	}))
}

// settleEvery is how often settle looks; settleMax bounds its wait.
const (
	settleEvery = 200 * time.Millisecond
	settleMax   = 30 * time.Minute
)

// settle waits until busy reports no flush or compaction at two looks in
// a row (Pebble starts the next compaction as one ends), and returns the
// seconds it waited. The reads then measure the shape of the LSM that the
// data size makes, not a backlog the bulk load left.
func settle(ctx context.Context, busy func() bool) (float64, error) {
	t0 := time.Now()
	idle := 0
	for idle < 2 && time.Since(t0) < settleMax {
		if busy() {
			idle = 0
		} else {
			idle++
		}
		if !sleep(ctx, settleEvery) {
			return 0, ctx.Err()
		}
	}
	return roundTo(time.Since(t0).Seconds(), 1), nil
}

// RunScale loads a store and raw Pebble with cfg.Events events in
// temporary directories under cfg.Dir, measures reads, appends, disk, memory
// and the open after a crash, and removes the directories before it
// returns. Ending ctx stops it with ctx's error.
func RunScale(ctx context.Context, cfg ScaleConfig) (res ScaleResult, err error) {
	if err := cfg.Validate(); err != nil {
		return ScaleResult{}, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res.LoadAvgStart = loadAvg()
	heap := startHeapSampler(10 * time.Millisecond)
	defer func() { res.PeakHeapBytes = heap.stop() }()
	root, err := os.MkdirTemp(cfg.Dir, "muninn-scale-")
	if err != nil {
		return ScaleResult{}, fmt.Errorf("bench: create temporary directory: %w", err)
	}
	defer func() {
		if rmErr := os.RemoveAll(root); rmErr != nil && err == nil {
			err = fmt.Errorf("bench: remove %s: %w", root, rmErr)
		}
	}()
	e := &scaleEnv{cfg: cfg, root: root, wl: newScaleWorkload(cfg.Events)}
	e.bench = &env{cfg: Config{Duration: cfg.Duration, Warmup: 0, Progress: cfg.Progress}}
	rng := rand.New(rand.NewPCG(3, 4))
	e.payloads = make([][]byte, payloadPool)
	for i := range e.payloads {
		p := make([]byte, cfg.PayloadBytes)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		e.payloads[i] = p
	}
	e.bench.payloads = e.payloads
	res.Events, res.Streams = float64(e.wl.total), float64(len(e.wl.sizes))
	for _, n := range e.wl.sizes {
		res.LongestStream = max(res.LongestStream, float64(n))
	}
	e.progress("%s events in %s streams (longest %s), in %s\n", thousands(res.Events), thousands(res.Streams), thousands(res.LongestStream), root)
	if err := e.run(ctx, &res); err != nil {
		return ScaleResult{}, fmt.Errorf("bench: scale: %w", err)
	}
	res.LoadAvgEnd = loadAvg()
	res.ScaleEnvironment = ScaleEnvironment{
		Cores: runtime.NumCPU(), GoVersion: runtime.Version(), GOOSGOARCH: runtime.GOOS + "/" + runtime.GOARCH,
		DurationS: cfg.Duration.Seconds(), PayloadBytes: cfg.PayloadBytes, Partitions: cfg.Partitions,
	}
	return res, nil
}

func (e *scaleEnv) progress(format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "bench: scale: "+format, args...)
}

func (e *scaleEnv) run(ctx context.Context, res *ScaleResult) error {
	rawDir := filepath.Join(e.root, "raw-pebble")
	storeDir := filepath.Join(e.root, "store")

	// Raw Pebble first, alone, then closed: the store's memory is measured
	// without it.
	raw, err := e.openRaw(rawDir)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := e.loadRaw(ctx, raw); err != nil {
		_ = raw.Close()
		return err
	}
	res.LoadRawS = roundTo(time.Since(t0).Seconds(), 3)
	e.progress("raw Pebble loaded in %.1f s; waiting for its compactions\n", res.LoadRawS)
	if res.SettleRawS, err = settle(ctx, func() bool {
		m := raw.Metrics()
		return m.Compact.NumInProgress > 0 || m.Flush.NumInProgress > 0
	}); err != nil {
		_ = raw.Close()
		return err
	}
	e.progress("raw Pebble settled in %.1f s\n", res.SettleRawS)
	if err := raw.Close(); err != nil {
		return fmt.Errorf("close raw Pebble: %w", err)
	}
	rawBytes, err := dirBytes(rawDir)
	if err != nil {
		return err
	}
	res.RawDiskBytes = roundTo(float64(rawBytes)/res.Events, 1)

	e.rss = startRSSSampler(10 * time.Millisecond)
	store, err := eventstore.Open(storeDir, e.storeOptions()...)
	if err != nil {
		e.rss.stop()
		return err
	}
	t0 = time.Now()
	err = e.loadStore(ctx, store)
	res.LoadStoreS = roundTo(time.Since(t0).Seconds(), 3)
	if err == nil {
		e.progress("store loaded in %.1f s; waiting for its compactions\n", res.LoadStoreS)
		res.SettleStoreS, err = settle(ctx, func() bool { return e.busy.Load() > 0 })
	}
	if err == nil {
		e.progress("store settled in %.1f s\n", res.SettleStoreS)
		err = store.Close() // the bytes of a closed store: no WAL beyond the checkpoint
	} else {
		_ = store.Close()
	}
	if err != nil {
		e.rss.stop()
		return err
	}
	storeBytes, err := dirBytes(storeDir)
	if err != nil {
		e.rss.stop()
		return err
	}
	res.DiskBytesEvent = roundTo(float64(storeBytes)/res.Events, 1)
	res.DiskRatio = ratio(res.DiskBytesEvent, res.RawDiskBytes)
	e.progress("bytes per event: store %.1f, raw %.1f (%.2f)\n", res.DiskBytesEvent, res.RawDiskBytes, res.DiskRatio)

	if store, err = eventstore.Open(storeDir, e.storeOptions()...); err != nil {
		e.rss.stop()
		return err
	}
	if raw, err = e.openRaw(rawDir); err != nil {
		_ = store.Close()
		e.rss.stop()
		return err
	}
	err = e.reads(ctx, store, raw, res)
	res.PeakRSSBytes = e.rss.stop()
	err = errors.Join(err, raw.Close())
	if err == nil {
		err = e.appends(ctx, store, res)
	}
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	ms, err := e.openAfterKill(ctx, storeDir)
	if err != nil {
		return err
	}
	res.OpenAfterKillMs = roundTo(ms, 1)
	e.progress("open after SIGKILL: %.1f ms\n", ms)
	return nil
}

func (e *scaleEnv) openRaw(dir string) (*pebble.DB, error) {
	// Raw Pebble as a user would open it, with the store's memtable and
	// block cache sizes so that both have the same memory.
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		Logger:       quietLogger{e.cfg.Progress},
		MemTableSize: 64 << 20,
		Cache:        cache,
	})
	if err != nil {
		return nil, fmt.Errorf("open raw Pebble: %w", err)
	}
	return db, nil
}

func (e *scaleEnv) payload(i int, version uint64) []byte {
	return e.payloads[(uint64(i)*7919+version)%payloadPool]
}

// loadRaw writes every event under its raw key, in the store's load order,
// in NoSync batches of about a thousand values, then flushes.
func (e *scaleEnv) loadRaw(ctx context.Context, db *pebble.DB) error {
	e.progress("loading raw Pebble (one value per event, key = stream + version)\n")
	b := db.NewBatch()
	var key []byte
	var err error
	n := 0
	e.wl.loadOrder(0, 1, func(i int, from uint64, count int) bool {
		name := scaleKey(i)
		for v := from + 1; v <= from+uint64(count); v++ {
			key = rawKey(key[:0], name, v)
			_ = b.Set(key, e.payload(i, v), nil)
		}
		if n += count; b.Count() >= 1000 {
			if err = errors.Join(ctx.Err(), b.Commit(pebble.NoSync)); err != nil {
				return false
			}
			b.Reset()
		}
		return true
	})
	if err == nil {
		err = b.Commit(pebble.NoSync)
	}
	err = errors.Join(err, b.Close())
	if err == nil {
		err = db.Flush()
	}
	if err != nil {
		return fmt.Errorf("load raw Pebble: %w", err)
	}
	return nil
}

// loadWorkersScale is how many goroutines load the store.
const loadWorkersScale = 8

// loadStore appends every event with NoSync appends of up to loadChunk
// events from several goroutines, then Syncs and flushes.
func (e *scaleEnv) loadStore(ctx context.Context, s *eventstore.PebbleStore) error {
	e.progress("loading the store (NoSync appends of up to %d events, %d goroutines, then Sync)\n", loadChunk, loadWorkersScale)
	if err := s.CreateTopic(ctx, scaleTopic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
		return err
	}
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for w := range loadWorkersScale {
		wg.Go(func() {
			events := make([]eventstore.Event, loadChunk)
			e.wl.loadOrder(w, loadWorkersScale, func(i int, from uint64, count int) bool {
				for j := range count {
					events[j] = eventstore.Event{Type: "bench.loaded", Payload: e.payload(i, from+uint64(j)+1)}
				}
				if _, err := s.Append(lctx, scaleTopic, scaleKey(i), eventstore.Exact(from), events[:count], eventstore.NoSync()); err != nil {
					stop(err)
					return false
				}
				return true
			})
		})
	}
	wg.Wait()
	if err := context.Cause(lctx); err != nil {
		return fmt.Errorf("load the store: %w", err)
	}
	if err := s.Sync(ctx); err != nil {
		return fmt.Errorf("load the store: %w", err)
	}
	return s.Flush(ctx)
}

// readSlice is how many stream reads each side makes before the other
// side's turn.
const readSlice = 500

// reads measures aggregate loads, stream reads and scans, each on the
// store and on raw Pebble in alternating slices of the same reads.
func (e *scaleEnv) reads(ctx context.Context, s *eventstore.PebbleStore, raw *pebble.DB, res *ScaleResult) error {
	streams := len(e.wl.sizes)
	rng := rand.New(rand.NewPCG(5, 6))
	// Popularity follows a Zipf law over a permutation of the streams,
	// independent of their lengths.
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(streams-1))
	mult := 7_368_787
	for gcd(mult, streams) != 1 {
		mult += 2
	}
	// The offset keeps the most popular stream from being stream 0, which
	// the workload makes the longest.
	popular := func() int { return int((zipf.Uint64()*uint64(mult) + uint64(streams/3)) % uint64(streams)) }
	uniform := func() int { return rng.IntN(streams) }
	res.RSSReadStartBytes = readRSS()

	e.progress("aggregate loads (Zipf) ...\n")
	loads, storeEv, rawEv, err := e.alternate(ctx, s, raw, popular)
	if err != nil {
		return fmt.Errorf("aggregate loads: %w", err)
	}
	res.AggregateLoadsPerS, res.AggregateLoadEvents, res.RawAggregateLoads = math.Round(loads), math.Round(storeEv), math.Round(rawEv)
	res.AggregateLoadRatio = ratio(storeEv, rawEv)
	e.progress("      %s loads/s, %s events/s; raw %s events/s (%.2f)\n", thousands(loads), thousands(storeEv), thousands(rawEv), res.AggregateLoadRatio)

	e.progress("stream reads (uniform) ...\n")
	reads, storeEv, rawEv, err := e.alternate(ctx, s, raw, uniform)
	if err != nil {
		return fmt.Errorf("stream reads: %w", err)
	}
	res.StreamReadsPerS, res.StreamReadEvents, res.RawStreamReads = math.Round(reads), math.Round(storeEv), math.Round(rawEv)
	res.StreamReadRatio = ratio(storeEv, rawEv)
	e.progress("      %s streams/s, %s events/s; raw %s events/s (%.2f)\n", thousands(reads), thousands(storeEv), thousands(rawEv), res.StreamReadRatio)

	e.progress("partition scan ...\n")
	if res.PartitionScan, res.RawScan, err = e.scans(ctx, s, raw); err != nil {
		return fmt.Errorf("partition scan: %w", err)
	}
	res.PartitionScanRatio = ratio(res.PartitionScan, res.RawScan)
	res.RSSReadEndBytes = readRSS()
	e.progress("      %s events/s; raw %s events/s (%.2f)\n", thousands(res.PartitionScan), thousands(res.RawScan), res.PartitionScanRatio)

	e.progress("stream reads (uniform), a second pass with warm caches ...\n")
	res.RSSSecondPassStartBytes = readRSS()
	if _, res.SecondPassEvents, _, err = e.alternate(ctx, s, raw, uniform); err != nil {
		return fmt.Errorf("second pass of stream reads: %w", err)
	}
	res.SecondPassEvents = math.Round(res.SecondPassEvents)
	res.RSSSecondPassEndBytes = readRSS()
	if e.storeCache != nil {
		res.StoreCacheBytes = uint64(e.storeCache.Size())
	}
	res.RawCacheBytes = uint64(raw.Metrics().BlockCache.Size)
	e.progress("      %s events/s; RSS %s -> %s MiB; block caches: store %s MiB, raw %s MiB\n", thousands(res.SecondPassEvents),
		mib(res.RSSSecondPassStartBytes), mib(res.RSSSecondPassEndBytes), mib(res.StoreCacheBytes), mib(res.RawCacheBytes))
	return nil
}

// mib formats a byte count in MiB.
func mib(b uint64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

// alternate reads whole streams picked by pick, in slices of readSlice
// reads that raw Pebble and the store each make in turn, until each side
// has read for cfg.Duration. It returns the store's reads/s and events/s
// and raw Pebble's events/s.
func (e *scaleEnv) alternate(ctx context.Context, s *eventstore.PebbleStore, raw *pebble.DB, pick func() int) (reads, storeEvents, rawEvents float64, err error) {
	var storeT, rawT time.Duration
	var n, events int
	slice := make([]int, readSlice)
	var key []byte
	for storeT < e.cfg.Duration || rawT < e.cfg.Duration {
		if err := ctx.Err(); err != nil {
			return 0, 0, 0, err
		}
		for j := range slice {
			slice[j] = pick()
		}
		t0 := time.Now()
		for _, i := range slice {
			name := scaleKey(i)
			key = rawKey(key[:0], name, 0)
			prefix := key[:len(name)]
			it, err := raw.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: eventstore.PrefixEnd(prefix)})
			if err != nil {
				return 0, 0, 0, err
			}
			got, bytes := 0, 0
			for ok := it.First(); ok; ok = it.Next() {
				// Copied out, as a reader that hands values on must
				// (the store's records own their bytes too).
				v := slices.Clone(it.Value())
				got++
				bytes += len(v)
			}
			if err := errors.Join(it.Error(), it.Close()); err != nil {
				return 0, 0, 0, err
			}
			if got != e.wl.sizes[i] || bytes != got*e.cfg.PayloadBytes {
				return 0, 0, 0, fmt.Errorf("raw Pebble: stream %s has %d events of %d bytes, want %d", name, got, bytes, e.wl.sizes[i])
			}
		}
		rawT += time.Since(t0)
		t0 = time.Now()
		for _, i := range slice {
			got, bytes := 0, 0
			for rec, err := range s.ReadStream(ctx, scaleTopic, scaleKey(i), 0) {
				if err != nil {
					return 0, 0, 0, err
				}
				got++
				bytes += len(rec.Payload)
			}
			if got != e.wl.sizes[i] || bytes != got*e.cfg.PayloadBytes {
				return 0, 0, 0, fmt.Errorf("store: stream %s has %d events of %d bytes, want %d", scaleKey(i), got, bytes, e.wl.sizes[i])
			}
			events += got
		}
		storeT += time.Since(t0)
		n += len(slice)
	}
	return float64(n) / storeT.Seconds(), float64(events) / storeT.Seconds(), float64(events) / rawT.Seconds(), nil
}

// scanSlices is how many alternating slices a scan measurement takes per
// side.
const scanSlices = 4

// scans reads the store's partitions with ReadPartition and raw Pebble's
// keys with one iterator, in alternating slices of cfg.Duration/scanSlices
// each (each slice of the store's reads the next partition from offset 0),
// and returns both sides' events per second.
func (e *scaleEnv) scans(ctx context.Context, s *eventstore.PebbleStore, raw *pebble.DB) (store, rawRate float64, err error) {
	it, err := raw.NewIter(nil)
	if err != nil {
		return 0, 0, err
	}
	defer it.Close()
	per := e.cfg.Duration / scanSlices
	var storeN, rawN int
	var storeT, rawT time.Duration
	ok := it.First()
	for i := range scanSlices {
		t0 := time.Now()
		for rec, err := range s.ReadPartition(ctx, scaleTopic, i%e.cfg.Partitions, 0) {
			if err != nil {
				return 0, 0, err
			}
			if len(rec.Payload) != e.cfg.PayloadBytes {
				return 0, 0, fmt.Errorf("record %d@%d has %d payload bytes", rec.Partition, rec.Offset, len(rec.Payload))
			}
			if storeN++; storeN%1024 == 0 && time.Since(t0) > per {
				break
			}
		}
		storeT += time.Since(t0)
		t0 = time.Now()
		if !ok { // at the end: start again
			ok = it.First()
		}
		for ; ok; ok = it.Next() {
			_ = slices.Clone(it.Value()) // copied out, as the store's records are
			if rawN++; rawN%1024 == 0 && time.Since(t0) > per {
				ok = it.Next()
				break
			}
		}
		rawT += time.Since(t0)
	}
	if err := it.Error(); err != nil {
		return 0, 0, err
	}
	return math.Round(float64(storeN) / storeT.Seconds()), math.Round(float64(rawN) / rawT.Seconds()), nil
}

// appends measures durable appends, 16 goroutines, on the big store and on
// an empty one, in alternating slices.
func (e *scaleEnv) appends(ctx context.Context, big *eventstore.PebbleStore, res *ScaleResult) error {
	e.progress("durable appends, 16 goroutines, big store and empty store ...\n")
	small, err := eventstore.Open(filepath.Join(e.root, "small"), e.storeOptions()...)
	if err != nil {
		return err
	}
	defer small.Close()
	for _, s := range []*eventstore.PebbleStore{big, small} {
		if err := s.CreateTopic(ctx, appendTopic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
			return err
		}
	}
	slice := max(e.cfg.Duration/slicesPerPair, 50*time.Millisecond)
	var b, sm float64
	for range slicesPerPair {
		for _, side := range []struct {
			s   *eventstore.PebbleStore
			sum *float64
		}{{big, &b}, {small, &sm}} {
			e.bench.store = side.s
			if err := side.s.Flush(ctx); err != nil {
				return err
			}
			r, err := e.bench.appendDurable(ctx, 16, 0, slice)
			if err != nil {
				return err
			}
			*side.sum += r / slicesPerPair
		}
	}
	e.bench.store = nil
	res.AppendBig16, res.AppendSmall16 = math.Round(b), math.Round(sm)
	res.AppendRatio = ratio(b, sm)
	e.progress("      big %s/s, empty %s/s (%.2f)\n", thousands(b), thousands(sm), res.AppendRatio)
	return nil
}

// openAfterKill starts a child that appends to the store in dir, kills it
// with SIGKILL once it has appended killAfterEvents events, and returns how
// long Open then takes, in milliseconds.
func (e *scaleEnv) openAfterKill(ctx context.Context, dir string) (float64, error) {
	e.progress("open after SIGKILL of a loading child ...\n")
	cmd := e.childCommand(dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start the loading child: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == scaleChildReady {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("the loading child ended before it was ready: %v", sc.Err())
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	werr := cmd.Wait()
	if err != nil {
		return 0, fmt.Errorf("%w (%v); its stderr:\n%s", err, werr, stderr.String())
	}
	var ws syscall.WaitStatus
	if st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		ws = st
	}
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return 0, fmt.Errorf("the loading child was not killed by SIGKILL: %v; its stderr:\n%s", werr, stderr.String())
	}
	t0 := time.Now()
	s, err := eventstore.Open(dir, e.storeOptions()...)
	el := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("open after SIGKILL: %w", err)
	}
	info, err := s.DescribeTopic(ctx, scaleTopic)
	if err == nil {
		var records int64
		for _, p := range info.Partitions {
			records += p.Records
		}
		if records < int64(e.wl.total) {
			err = fmt.Errorf("open after SIGKILL: %d records, fewer than the %d loaded", records, e.wl.total)
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return float64(el.Microseconds()) / 1000, err
}

func (e *scaleEnv) childCommand(dir string) *exec.Cmd {
	if e.cfg.ChildCommand != nil {
		return e.cfg.ChildCommand(dir)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return exec.Command(exe, "bench", "--scale-child", dir)
}

// scaleChildReady is the line a child writes once it has appended enough.
const scaleChildReady = "loading"

// ScaleChild is the child process of a scale run's crash measurement: it
// opens the store in dir and appends to new streams of its loaded topic,
// with NoSync, writing the line "loading" to w once it has appended
// 100,000 events, and goes on until it is killed. It returns an error
// only if it cannot (or if it is not killed after ten times as many
// events). It is not meant for anything else.
func ScaleChild(ctx context.Context, dir string, w io.Writer) error {
	s, err := eventstore.Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	if _, err := s.DescribeTopic(ctx, scaleTopic); err != nil {
		return err
	}
	payload := make([]byte, DefaultPayloadBytes)
	events := make([]eventstore.Event, loadChunk)
	for j := range events {
		events[j] = eventstore.Event{Type: "bench.loaded", Payload: payload}
	}
	for n := 0; n < 10*killAfterEvents; n += loadChunk {
		if _, err := s.Append(ctx, scaleTopic, "child-"+strconv.Itoa(n), eventstore.NoStream, events, eventstore.NoSync()); err != nil {
			return err
		}
		if n == killAfterEvents {
			if _, err := fmt.Fprintln(w, scaleChildReady); err != nil {
				return err
			}
		}
	}
	return errors.New("bench: scale child: not killed")
}

// dirBytes returns the size of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}

func roundTo(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// loadAvg returns the machine's 1-minute load average, or 0 where there is
// no /proc/loadavg.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, _ := strconv.ParseFloat(f, 64)
	return v
}

// readRSS returns the process's resident set size, or 0 where there is no
// /proc/self/statm.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(fields[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// rssSampler keeps the peak of the resident set size, read at a fixed
// interval.
type rssSampler struct {
	quit chan struct{}
	done chan struct{}
	peak uint64
}

func startRSSSampler(every time.Duration) *rssSampler {
	r := &rssSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			r.peak = max(r.peak, readRSS())
			select {
			case <-t.C:
			case <-r.quit:
				r.peak = max(r.peak, readRSS())
				return
			}
		}
	}()
	return r
}

// stop ends the sampling and returns the peak.
func (r *rssSampler) stop() uint64 {
	close(r.quit)
	<-r.done
	return r.peak
}

// writeFields writes one row per measured field of the struct v (those
// with a json tag; embedded structs are skipped): its label, its value and
// its key.
func writeFields(w io.Writer, v any) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASUREMENT\tVALUE\tKEY")
	rv := reflect.ValueOf(v)
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := jsonKey(f)
		if f.Anonymous || key == "" {
			continue
		}
		fv := rv.Field(i)
		value := formatValue(key, fv)
		if fv.Kind() == reflect.Float64 && math.Abs(fv.Float()) < 1000 && fv.Float() != math.Trunc(fv.Float()) {
			value = strconv.FormatFloat(fv.Float(), 'f', 2, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", cmp.Or(f.Tag.Get("label"), key), value, key)
	}
	return tw.Flush()
}
