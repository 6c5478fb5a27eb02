package eventstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// WithMeterProvider sets where the store reports its metrics (default
// otel.GetMeterProvider(), a no-op until a program sets one): the
// histograms muninn_append_batch_size{topic} (events per append) and
// muninn_fsync_duration_seconds (how long a durable append or state update
// waited for its fsync), and Pebble's own metrics as muninn_pebble_*
// (compactions, flushes, read amplification, block cache hits, misses and
// size, memtable size, WAL bytes, disk usage...), read from Pebble when the
// metrics are collected, never by a goroutine of the store's. A nil mp
// fails Open.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) {
		o.meters = mp
		o.metersSet = true
	}
}

// storeMetrics are the store's instruments.
type storeMetrics struct {
	batch metric.Int64Histogram
	fsync metric.Float64Histogram
	// topics caches the record options (the attribute set) of each topic,
	// as a slice, so that recording allocates neither the set nor the
	// variadic call's slice.
	topics sync.Map // string -> []metric.RecordOption
	// pebble is the registration of the callback of Pebble's metrics.
	pebble metric.Registration
}

// pebbleGauge is one of Pebble's metrics: its name after
// muninn_pebble_, what it is, its unit, whether it only grows (a counter)
// and how to read it.
type pebbleGauge struct {
	name, desc, unit string
	counter          bool
	value            func(m *pebble.Metrics) int64
}

var pebbleGauges = []pebbleGauge{
	{"compactions_total", "Compactions Pebble has run.", "{compaction}", true, func(m *pebble.Metrics) int64 { return m.Compact.Count }},
	{"compactions_in_progress", "Compactions running.", "{compaction}", false, func(m *pebble.Metrics) int64 { return m.Compact.NumInProgress }},
	{"compaction_debt_bytes", "Estimated bytes to compact for the LSM to reach a stable state.", "By", false, func(m *pebble.Metrics) int64 { return int64(m.Compact.EstimatedDebt) }},
	{"flushes_total", "Memtable flushes.", "{flush}", true, func(m *pebble.Metrics) int64 { return m.Flush.Count }},
	{"read_amplification", "Read amplification: sublevels of L0 plus non-empty lower levels.", "1", false, func(m *pebble.Metrics) int64 { return int64(m.ReadAmp()) }},
	{"block_cache_hits_total", "Block cache hits.", "{hit}", true, func(m *pebble.Metrics) int64 { return m.BlockCache.Hits }},
	{"block_cache_misses_total", "Block cache misses.", "{miss}", true, func(m *pebble.Metrics) int64 { return m.BlockCache.Misses }},
	{"block_cache_size_bytes", "Bytes in the block cache.", "By", false, func(m *pebble.Metrics) int64 { return m.BlockCache.Size }},
	{"block_cache_blocks", "Blocks in the block cache.", "{block}", false, func(m *pebble.Metrics) int64 { return m.BlockCache.Count }},
	{"memtable_size_bytes", "Bytes allocated by memtables (and large batches).", "By", false, func(m *pebble.Metrics) int64 { return int64(m.MemTable.Size) }},
	{"memtables", "Memtables, the mutable one included.", "{memtable}", false, func(m *pebble.Metrics) int64 { return m.MemTable.Count }},
	{"wal_files", "Live write-ahead log files.", "{file}", false, func(m *pebble.Metrics) int64 { return m.WAL.Files }},
	{"wal_size_bytes", "Bytes in live write-ahead log files.", "By", false, func(m *pebble.Metrics) int64 { return int64(m.WAL.PhysicalSize) }},
	{"wal_bytes_in_total", "Logical bytes written to the write-ahead log.", "By", true, func(m *pebble.Metrics) int64 { return int64(m.WAL.BytesIn) }},
	{"wal_bytes_written_total", "Physical bytes written to the write-ahead log.", "By", true, func(m *pebble.Metrics) int64 { return int64(m.WAL.BytesWritten) }},
	{"sstables", "Live sstables in all levels.", "{table}", false, func(m *pebble.Metrics) int64 { return m.Total().TablesCount }},
	{"sstables_size_bytes", "Bytes in live sstables.", "By", false, func(m *pebble.Metrics) int64 { return m.Total().TablesSize }},
	{"disk_usage_bytes", "Bytes the store takes on disk (tables, WAL, manifest, obsolete files).", "By", false, func(m *pebble.Metrics) int64 { return int64(m.DiskSpaceUsage()) }},
	{"snapshots", "Open snapshots.", "{snapshot}", false, func(m *pebble.Metrics) int64 { return int64(m.Snapshots.Count) }},
	{"table_iterators", "Open sstable iterators.", "{iterator}", false, func(m *pebble.Metrics) int64 { return m.TableIters }},
}

// newStoreMetrics creates the store's instruments on mp and registers the
// callback that reads Pebble's metrics from s.
func newStoreMetrics(mp metric.MeterProvider, s *PebbleStore) (*storeMetrics, error) {
	m := meterOf(mp)
	var sm storeMetrics
	var err error
	if sm.batch, err = m.Int64Histogram(metricAppendBatchSize,
		metric.WithDescription("Events per append, by topic."), metric.WithUnit("{event}"),
		metric.WithExplicitBucketBoundaries(sizeBounds...)); err != nil {
		return nil, err
	}
	if sm.fsync, err = m.Float64Histogram(metricFsyncDuration,
		metric.WithDescription("Time a durable append or state update waited for its fsync."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(durationBounds...)); err != nil {
		return nil, err
	}
	var errs []error
	observables := make([]metric.Int64Observable, len(pebbleGauges))
	for i, g := range pebbleGauges {
		name := metricPebblePrefix + g.name
		if g.counter {
			observables[i], err = m.Int64ObservableCounter(name, metric.WithDescription(g.desc), metric.WithUnit(g.unit))
		} else {
			observables[i], err = m.Int64ObservableGauge(name, metric.WithDescription(g.desc), metric.WithUnit(g.unit))
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	insts := make([]metric.Observable, len(observables))
	for i, o := range observables {
		insts[i] = o
	}
	sm.pebble, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		if s.acquire() != nil {
			return nil // closed or failed: nothing to report
		}
		defer s.release()
		pm := s.db.Metrics()
		for i, g := range pebbleGauges {
			o.ObserveInt64(observables[i], g.value(pm))
		}
		return nil
	}, insts...)
	if err != nil {
		return nil, err
	}
	return &sm, nil
}

// appended records an append of n events to topic.
func (sm *storeMetrics) appended(topic string, n int) {
	opts, ok := sm.topics.Load(topic)
	if !ok {
		opts, _ = sm.topics.LoadOrStore(topic, []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(labelTopic, topic)))})
	}
	sm.batch.Record(context.Background(), int64(n), opts.([]metric.RecordOption)...)
}

// synced records a wait for fsync that began at start.
func (sm *storeMetrics) synced(start time.Time) {
	sm.fsync.Record(context.Background(), time.Since(start).Seconds())
}

// close unregisters the callback of Pebble's metrics.
func (sm *storeMetrics) close() error {
	return sm.pebble.Unregister()
}

// The names and buckets of package telemetry (telemetry/metrics.go), which
// this package cannot import (telemetry imports eventstore for its record
// helpers); telemetry's TestStoreMetricNames checks that they agree.
const (
	meterName             = "github.com/muninn-es/muninn"
	metricAppendBatchSize = "muninn_append_batch_size"
	metricFsyncDuration   = "muninn_fsync_duration_seconds"
	metricPebblePrefix    = "muninn_pebble_"
	labelTopic            = "topic"
)

var (
	durationBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	sizeBounds     = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}
)

// meterOf is telemetry.Meter: mp's meter of Muninn's scope, or the global
// provider's when mp is nil.
func meterOf(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(meterName)
}
