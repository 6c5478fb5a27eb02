// Command layoutexp is the experiment behind the eventstore key layout (see
// BENCHMARKS.md): it stores 10,000 streams x 10 records of 300 bytes in raw
// Pebble three ways and measures stream reads, partition scans and durable
// writes with 16 goroutines for each:
//
//	A: the record under its log key and under its stream key (the choice);
//	B: the record under its stream key, a pointer under its log key;
//	C: the record under its log key, a pointer under its stream key.
//
// Run it with: go run ./internal/layoutexp
package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
)

type quiet struct{}

// Infof drops Pebble's messages.
func (quiet) Infof(string, ...any) {}

// Errorf drops Pebble's messages.
func (quiet) Errorf(string, ...any) {}

// Fatalf stops the experiment.
func (quiet) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

const streams, perStream, parts = 10000, 10, 8

func logKey(p, off int) []byte {
	k := []byte{3}
	k = binary.BigEndian.AppendUint32(k, uint32(p))
	return binary.BigEndian.AppendUint64(k, uint64(off))
}
func streamKey(s, v int) []byte {
	k := append([]byte{4}, fmt.Sprintf("stream-%06d", s)...)
	return binary.BigEndian.AppendUint64(k, uint64(v))
}

func split(k []byte) int {
	if len(k) > 8 && k[0] == 4 {
		return len(k) - 8
	}
	return len(k)
}

func open(dir string) *pebble.DB {
	c := *pebble.DefaultComparer
	c.Split = split
	c.Name = "exp"
	o := &pebble.Options{Logger: quiet{}, Comparer: &c, MemTableSize: 64 << 20, Cache: pebble.NewCache(64 << 20)}
	o.EnsureDefaults()
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, o)
	if err != nil {
		panic(err)
	}
	return db
}

// put stores a record under its log key lk and its stream key sk, as
// layout A, B or C does.
func put(b *pebble.Batch, layout byte, lk, sk, rec []byte) {
	switch layout {
	case 'A':
		b.Set(lk, rec, nil)
		b.Set(sk, rec, nil)
	case 'B':
		b.Set(lk, sk, nil)
		b.Set(sk, rec, nil)
	case 'C':
		b.Set(lk, rec, nil)
		b.Set(sk, lk, nil)
	}
}

// readValue copies out the record that v is, or that v points to.
func readValue(db *pebble.DB, v []byte, pointer bool) {
	if !pointer {
		_ = append([]byte(nil), v...)
		return
	}
	val, cl, err := db.Get(v)
	if err != nil {
		panic(err)
	}
	_ = append([]byte(nil), val...)
	cl.Close()
}

func main() {
	rec := make([]byte, 300)
	for i := range rec {
		rec[i] = byte(rand.Uint32())
	}
	for _, layout := range []string{"A both", "B stream+logptr", "C log+streamptr"} {
		dir, err := os.MkdirTemp("", "muninn-layout-")
		if err != nil {
			panic(err)
		}
		db := open(dir)
		// load: streams appended round-robin so a partition interleaves streams
		next := make([]int, parts)
		b := db.NewBatch()
		for v := 0; v < perStream; v++ {
			for s := 0; s < streams; s++ {
				p := s % parts
				lk, sk := logKey(p, next[p]), streamKey(s, v)
				next[p]++
				put(b, layout[0], lk, sk, rec)
				if b.Len() > 1<<20 {
					b.Commit(pebble.NoSync)
					b = db.NewBatch()
				}
			}
		}
		b.Commit(pebble.Sync)
		db.Flush()
		// stream reads
		t0 := time.Now()
		n := 0
		for s := 0; s < streams; s++ {
			it, _ := db.NewIter(nil)
			for ok := it.SeekPrefixGE(streamKey(s, 0)); ok; ok = it.Next() {
				readValue(db, it.Value(), layout[0] == 'C')
				n++
			}
			it.Close()
		}
		sr := float64(n) / time.Since(t0).Seconds()
		// partition scan
		t0 = time.Now()
		n = 0
		for p := 0; p < parts; p++ {
			it, _ := db.NewIter(&pebble.IterOptions{LowerBound: logKey(p, 0), UpperBound: logKey(p+1, 0)})
			for ok := it.First(); ok; ok = it.Next() {
				readValue(db, it.Value(), layout[0] == 'B')
				n++
			}
			it.Close()
		}
		sc := float64(n) / time.Since(t0).Seconds()
		// durable writes, 16 goroutines, one record per batch
		var cnt atomic.Int64
		stop := time.Now().Add(3 * time.Second)
		var wg sync.WaitGroup
		var off atomic.Int64
		for g := 0; g < 16; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for v := 0; time.Now().Before(stop); v++ {
					o := int(off.Add(1))
					lk, sk := logKey(9, o), streamKey(100000+g, v)
					b := db.NewBatch()
					put(b, layout[0], lk, sk, rec)
					b.Commit(pebble.Sync)
					b.Close()
					cnt.Add(1)
				}
			}()
		}
		wg.Wait()
		fmt.Printf("%-16s stream read %9.0f ev/s  partition scan %9.0f ev/s  durable writes x16 %7.0f/s\n", layout, sr, sc, float64(cnt.Load())/3)
		db.Close()
		os.RemoveAll(dir)
	}
}
