package stream

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// Topology is a graph of sources, processors, state stores and sinks, built
// with this package's functions (Source, Map, GroupByKey, Count, ToTopic,
// ...) and run by an App. Building never fails part way: a function given
// bad input records the problem, and NewApp (and Err) report every recorded
// problem at once. A Topology is not safe for concurrent building; once an
// App runs it, it must not change.
type Topology struct {
	nodes   []*node
	sources []*source
	sinks   []*sinkDef
	stores  []*storeDef
	errs    []error
	apps    int
}

// NewTopology returns an empty topology.
func NewTopology() *Topology { return &Topology{} }

// Err returns every problem recorded while the topology was built, joined,
// or nil.
func (t *Topology) Err() error {
	errs := slices.Clone(t.errs)
	if len(t.sources) == 0 {
		errs = append(errs, errors.New("stream: topology has no source"))
	}
	return errors.Join(errs...)
}

func (t *Topology) fail(format string, args ...any) {
	t.errs = append(t.errs, invalid(format, args...))
}

type nodeKind int

const (
	kindSource nodeKind = iota
	kindProcessor
	kindSink
)

// node is the description of one step, for Describe.
type node struct {
	id       int
	name     string
	kind     nodeKind
	topic    string // source or sink topic
	internal bool   // topic is a repartition topic: <appID>-<topic>
	stores   []*storeDef
	parents  []*node
	children []*node
}

// newNode adds a node named after its kind (Kafka Streams' naming:
// KSTREAM-FILTER-0000000003) with the given parents.
func (t *Topology) newNode(kind nodeKind, label string, parents ...*node) *node {
	n := &node{id: len(t.nodes), kind: kind, name: fmt.Sprintf("%s-%010d", label, len(t.nodes))}
	for _, p := range parents {
		if p == nil {
			continue
		}
		n.parents = append(n.parents, p)
		p.children = append(p.children, n)
	}
	t.nodes = append(t.nodes, n)
	return n
}

// storeKind tells key-value stores from window stores.
type storeKind int

const (
	kvStore storeKind = iota
	windowStore
)

// storeDef is a state store: a prefix of the state space, logged to a
// compacted changelog topic.
type storeDef struct {
	name string
	kind storeKind
	// windows of a window store.
	windows Windows
}

// source reads one topic into the topology.
type source struct {
	topic    string
	internal bool
	// process decodes one record and pushes it through the topology.
	process func(pc *procCtx, rec *eventstore.Record) error
}

// sinkDef writes records to a topic.
type sinkDef struct {
	topic     string
	internal  bool
	eventType string
}

func (t *Topology) addStore(name string, kind storeKind, w Windows) *storeDef {
	if err := eventstore.ValidateName("stream store", name); err != nil {
		t.errs = append(t.errs, err)
	}
	for _, s := range t.stores {
		if s.name == name {
			t.fail("store %q is defined twice", name)
		}
	}
	st := &storeDef{name: name, kind: kind, windows: w}
	t.stores = append(t.stores, st)
	return st
}

func (t *Topology) addSource(topic string, internal bool, fn func(*procCtx, *eventstore.Record) error) {
	if !internal {
		if err := eventstore.ValidateTopicName(topic); err != nil {
			t.errs = append(t.errs, fmt.Errorf("stream: source topic: %w", err))
		}
	}
	for _, s := range t.sources {
		if s.topic == topic && s.internal == internal {
			t.fail("topic %q is read by two sources; read it once and branch", topic)
		}
	}
	t.sources = append(t.sources, &source{topic: topic, internal: internal, process: fn})
}

// topicName returns the topic a source or sink reads or writes for app.
func topicName(appID, topic string, internal bool) string {
	if internal {
		return appID + "-" + topic
	}
	return topic
}

// Describe returns a stable text description of the topology, in the shape
// of Kafka Streams' TopologyDescription: its sub-topologies (groups of nodes
// connected by edges or by a shared store; a repartition topic separates
// them), each node with its topics or stores, children (-->) and parents
// (<--), and then the state stores with their changelog topics. Internal
// topics are named without the application ID, which only an App adds.
func (t *Topology) Describe() string {
	// Union-find over nodes joined by edges and by shared stores.
	parent := make([]int, len(t.nodes))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		ra, rb := find(a), find(b)
		if ra < rb {
			parent[rb] = ra
		} else if rb < ra {
			parent[ra] = rb
		}
	}
	storeOwner := map[*storeDef]int{}
	for _, n := range t.nodes {
		for _, c := range n.children {
			union(n.id, c.id)
		}
		for _, s := range n.stores {
			if o, ok := storeOwner[s]; ok {
				union(o, n.id)
			} else {
				storeOwner[s] = n.id
			}
		}
	}
	groups := map[int][]*node{}
	var roots []int
	for _, n := range t.nodes {
		r := find(n.id)
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], n)
	}
	slices.Sort(roots)
	var b strings.Builder
	b.WriteString("Topologies:\n")
	names := func(ns []*node) string {
		if len(ns) == 0 {
			return "none"
		}
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = n.name
		}
		return strings.Join(out, ", ")
	}
	for i, r := range roots {
		fmt.Fprintf(&b, "   Sub-topology: %d\n", i)
		for _, n := range groups[r] {
			switch n.kind {
			case kindSource:
				fmt.Fprintf(&b, "    Source: %s (topics: [%s])\n", n.name, n.topic)
			case kindProcessor:
				stores := make([]string, len(n.stores))
				for j, s := range n.stores {
					stores[j] = s.name
				}
				fmt.Fprintf(&b, "    Processor: %s (stores: [%s])\n", n.name, strings.Join(stores, ", "))
			case kindSink:
				fmt.Fprintf(&b, "    Sink: %s (topic: %s)\n", n.name, n.topic)
			}
			if n.kind != kindSink {
				fmt.Fprintf(&b, "      --> %s\n", names(n.children))
			}
			if n.kind != kindSource {
				fmt.Fprintf(&b, "      <-- %s\n", names(n.parents))
			}
		}
	}
	if len(t.stores) > 0 {
		b.WriteString("Stores:\n")
		for _, s := range t.stores {
			switch s.kind {
			case kvStore:
				fmt.Fprintf(&b, "   Store: %s (key-value, changelog: %s-changelog)\n", s.name, s.name)
			case windowStore:
				fmt.Fprintf(&b, "   Store: %s (window %s, changelog: %s-changelog)\n", s.name, s.windows, s.name)
			}
		}
	}
	return b.String()
}

// String describes the windows: "tumbling 1m0s, grace 10s, retention 24h0m0s".
func (w Windows) String() string {
	kind := fmt.Sprintf("tumbling %s", w.Size)
	if w.Advance != w.Size {
		kind = fmt.Sprintf("hopping %s advance %s", w.Size, w.Advance)
	}
	return fmt.Sprintf("%s, grace %s, retention %s", kind, w.Grace, w.retention())
}

// timeOf converts nanoseconds since the epoch to a time in UTC.
func timeOf(ns int64) time.Time { return time.Unix(0, ns).UTC() }
