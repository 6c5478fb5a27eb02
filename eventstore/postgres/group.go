package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

type tp = eventstore.TopicPartition

// assignment is a group's assignment as of one generation. Its maps are
// never changed once made.
type assignment struct {
	generation int64
	members    map[string][]tp
	owner      map[tp]string
	epoch      map[tp]int64
	endAt      map[tp]int64
}

// groupCache is what a Store knows of a group's assignment: the newest it
// read or made, valid unless another Store has since announced a newer
// generation (heard) or everything was woken (dirty: notifications may have
// been missed). ver changes with every change of what a member may see, so
// that members know when to look again.
type groupCache struct {
	name string
	ver  atomic.Int64
	mu   struct {
		sync.Mutex
		cur     *assignment
		heard   int64
		dirty   bool
		seq     int64
		changed chan struct{}
	}
}

func (s *Store) group(name string) *groupCache {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	g := s.groupsMu.byName[name]
	if g == nil {
		g = &groupCache{name: name}
		g.mu.changed = make(chan struct{})
		s.groupsMu.byName[name] = g
	}
	return g
}

// changed returns the channel the next change of the group closes.
func (g *groupCache) changed() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.mu.changed
}

func (g *groupCache) signalLocked() {
	g.ver.Add(1)
	close(g.mu.changed)
	g.mu.changed = make(chan struct{})
}

func (g *groupCache) validLocked() bool {
	return g.mu.cur != nil && !g.mu.dirty && g.mu.cur.generation >= g.mu.heard
}

// heard records that another Store made generation gen.
func (g *groupCache) heard(gen int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gen > g.mu.heard {
		g.mu.heard = gen
	}
	if !g.validLocked() {
		g.signalLocked()
	}
}

// invalidate makes the cached assignment stale: the next look reloads it.
func (g *groupCache) invalidate() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.dirty = true
	g.mu.seq++
	g.signalLocked()
}

// apply caches an assignment read (loadSeq: the seq when the read began) or
// made (loadSeq < 0) in the database.
func (g *groupCache) apply(a *assignment, loadSeq int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.cur == nil || a.generation >= g.mu.cur.generation {
		g.mu.cur = a
	}
	if loadSeq >= 0 && loadSeq == g.mu.seq {
		g.mu.dirty = false
		g.mu.heard = max(g.mu.heard, a.generation)
	}
	g.signalLocked()
}

// current returns the group's assignment, reading it from the database
// when the cached one is stale.
func (s *Store) current(ctx context.Context, g *groupCache) (*assignment, error) {
	g.mu.Lock()
	if g.validLocked() {
		cur := g.mu.cur
		g.mu.Unlock()
		return cur, nil
	}
	seq := g.mu.seq
	g.mu.Unlock()
	a, err := s.loadAssignment(ctx, s.pool, g.name)
	if err != nil {
		return nil, err
	}
	g.apply(a, seq)
	return a, nil
}

func (s *Store) loadAssignment(ctx context.Context, q *pgxpool.Pool, group string) (*assignment, error) {
	rows, err := q.Query(ctx, s.q(`SELECT g.generation, t.name, gp.part, gp.owner, gp.epoch, gp.end_at
		FROM {s}.groups g
		LEFT JOIN {s}.group_partitions gp ON gp.group_name = g.name
		LEFT JOIN {s}.topics t ON t.id = gp.topic_id
		WHERE g.name = $1`), group)
	if err != nil {
		return nil, s.dbErr(ctx, fmt.Sprintf("read assignment of group %q", group), err)
	}
	a := &assignment{members: map[string][]tp{}, owner: map[tp]string{}, epoch: map[tp]int64{}, endAt: map[tp]int64{}}
	var gen int64
	var name, member *string
	var part *int32
	var epoch, endAt *int64
	_, err = pgx.ForEachRow(rows, []any{&gen, &name, &part, &member, &epoch, &endAt}, func() error {
		a.generation = gen
		if name == nil || part == nil {
			return nil
		}
		k := tp{Topic: *name, Partition: int(*part)}
		a.epoch[k], a.endAt[k] = *epoch, *endAt
		if member != nil {
			a.owner[k] = *member
			a.members[*member] = append(a.members[*member], k)
		}
		return nil
	})
	if err != nil {
		return nil, s.dbErr(ctx, fmt.Sprintf("read assignment of group %q", group), err)
	}
	for _, l := range a.members {
		sortTPs(l)
	}
	return a, nil
}

func sortTPs(l []tp) {
	slices.SortFunc(l, func(a, b tp) int { return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition)) })
}

// rebalance recomputes a group's assignment in tx, after mutate (a join or
// a leave) and after removing the members of other Stores whose leases ran
// out. It holds the group's row lock, which commits take in share mode, so
// that no commit can interleave with it. Every subscribed partition goes,
// round-robin in member ID order, to the members subscribed to its topic;
// a partition whose owner changes gets the next owner epoch.
func (s *Store) rebalance(ctx context.Context, tx pgx.Tx, group string, mutate func() error) (*assignment, error) {
	if _, err := tx.Exec(ctx, s.q(`INSERT INTO {s}.groups (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`), group); err != nil {
		return nil, err
	}
	var gen int64
	if err := tx.QueryRow(ctx, s.q(`SELECT generation FROM {s}.groups WHERE name = $1 FOR UPDATE`), group).Scan(&gen); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, s.q(`DELETE FROM {s}.group_members WHERE group_name = $1 AND lease_until < $2 AND store_id <> $3 RETURNING member_key`),
		group, s.clk.Now().UnixNano(), s.id)
	if err != nil {
		return nil, err
	}
	expired, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, m := range expired {
		s.log.Info("postgres: member's lease ran out; it leaves its group", "group", group, "member", m)
	}
	if mutate != nil {
		if err := mutate(); err != nil {
			return nil, err
		}
	}
	type member struct {
		id     string
		topics []int64
	}
	rows, err = tx.Query(ctx, s.q(`SELECT member_key, topic_ids FROM {s}.group_members WHERE group_name = $1`), group)
	if err != nil {
		return nil, err
	}
	members, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (member, error) {
		var m member
		err := r.Scan(&m.id, &m.topics)
		return m, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(members, func(a, b member) int { return cmp.Compare(a.id, b.id) })
	var ids []int64
	for _, m := range members {
		for _, id := range m.topics {
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	type topicRow struct {
		id    int64
		name  string
		parts int
		ends  []int64
	}
	rows, err = tx.Query(ctx, s.q(`SELECT t.id, t.name, t.partitions, array_agg(p.next_offset ORDER BY p.part)
		FROM {s}.topics t JOIN {s}.partitions p ON p.topic_id = t.id WHERE t.id = ANY($1) GROUP BY t.id`), ids)
	if err != nil {
		return nil, err
	}
	topics, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (topicRow, error) {
		var t topicRow
		err := r.Scan(&t.id, &t.name, &t.parts, &t.ends)
		return t, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(topics, func(a, b topicRow) int { return cmp.Compare(a.name, b.name) })
	type prevRow struct {
		member *string
		epoch  int64
	}
	prev := map[[2]int64]prevRow{}
	rows, err = tx.Query(ctx, s.q(`SELECT topic_id, part, owner, epoch FROM {s}.group_partitions WHERE group_name = $1`), group)
	if err != nil {
		return nil, err
	}
	var tid int64
	var part int32
	var pm *string
	var pe int64
	if _, err := pgx.ForEachRow(rows, []any{&tid, &part, &pm, &pe}, func() error {
		prev[[2]int64{tid, int64(part)}] = prevRow{pm, pe}
		return nil
	}); err != nil {
		return nil, err
	}

	a := &assignment{generation: gen + 1, members: map[string][]tp{}, owner: map[tp]string{}, epoch: map[tp]int64{}, endAt: map[tp]int64{}}
	var upT []int64
	var upP []int32
	var upM []string
	var upE, upEnd []int64
	assigned := map[[2]int64]bool{}
	for _, t := range topics {
		var subs []string
		for _, m := range members {
			if slices.Contains(m.topics, t.id) {
				subs = append(subs, m.id)
			}
		}
		for p := range t.parts {
			id := subs[p%len(subs)]
			k := tp{Topic: t.name, Partition: p}
			key := [2]int64{t.id, int64(p)}
			assigned[key] = true
			a.members[id] = append(a.members[id], k)
			a.owner[k] = id
			old, had := prev[key]
			if had && old.member != nil && *old.member == id {
				a.epoch[k] = old.epoch
				continue // unchanged; end_at stays
			}
			a.epoch[k] = old.epoch + 1
			end := int64(0)
			if p < len(t.ends) {
				end = t.ends[p]
			}
			a.endAt[k] = end
			upT, upP, upM, upE, upEnd = append(upT, t.id), append(upP, int32(p)), append(upM, id), append(upE, old.epoch+1), append(upEnd, end)
		}
	}
	if len(upT) > 0 {
		if _, err := tx.Exec(ctx, s.q(`INSERT INTO {s}.group_partitions (group_name, topic_id, part, owner, epoch, end_at)
			SELECT $1, t, p, m, e, x FROM unnest($2::bigint[], $3::int[], $4::text[], $5::bigint[], $6::bigint[]) AS u(t, p, m, e, x)
			ON CONFLICT (group_name, topic_id, part) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch, end_at = excluded.end_at`),
			group, upT, upP, upM, upE, upEnd); err != nil {
			return nil, err
		}
	}
	// Partitions no member subscribes to any more keep their epoch, owned
	// by nobody.
	var freeT []int64
	var freeP []int32
	for key, old := range prev {
		if old.member != nil && !assigned[key] {
			freeT, freeP = append(freeT, key[0]), append(freeP, int32(key[1]))
		}
	}
	if len(freeT) > 0 {
		if _, err := tx.Exec(ctx, s.q(`UPDATE {s}.group_partitions gp SET owner = NULL FROM unnest($2::bigint[], $3::int[]) AS u(t, p)
			WHERE gp.group_name = $1 AND gp.topic_id = u.t AND gp.part = u.p`), group, freeT, freeP); err != nil {
			return nil, err
		}
	}
	// The unchanged partitions' end_at, for Latest members that resume them.
	if err := s.fillEndAt(ctx, tx, group, a); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, s.q(`UPDATE {s}.groups SET generation = $2 WHERE name = $1`), group, a.generation); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, "g "+strconv.FormatInt(a.generation, 10)+" "+group); err != nil {
		return nil, err
	}
	for _, l := range a.members {
		sortTPs(l)
	}
	return a, nil
}

func (s *Store) fillEndAt(ctx context.Context, tx pgx.Tx, group string, a *assignment) error {
	rows, err := tx.Query(ctx, s.q(`SELECT t.name, gp.part, gp.end_at FROM {s}.group_partitions gp JOIN {s}.topics t ON t.id = gp.topic_id WHERE gp.group_name = $1`), group)
	if err != nil {
		return err
	}
	var name string
	var part int32
	var end int64
	_, err = pgx.ForEachRow(rows, []any{&name, &part, &end}, func() error {
		k := tp{Topic: name, Partition: int(part)}
		if _, ok := a.endAt[k]; !ok {
			a.endAt[k] = end
		}
		return nil
	})
	return err
}

// runRebalance runs a rebalance in a transaction of its own and caches the
// result.
func (s *Store) runRebalance(ctx context.Context, group string, mutate func(tx pgx.Tx) error) (*assignment, error) {
	var a *assignment
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var m func() error
		if mutate != nil {
			m = func() error { return mutate(tx) }
		}
		var err error
		a, err = s.rebalance(ctx, tx, group, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.group(group).apply(a, -1)
	return a, nil
}

// consumer is the Store's Consumer, a member of a consumer group whose
// other members may be in other Stores.
type consumer struct {
	s  *Store
	g  *groupCache
	id string
	// key names the member in the database: "<store id>/<id>".
	key    string
	topics []*topicMeta
	opts   eventstore.ConsumerOptions
	closed chan struct{}
	once   sync.Once
	leftMu sync.Mutex // serializes leave
	left   atomic.Bool

	// Owned by the goroutine that polls: the group's cache version and
	// generation the member last looked at, its partitions and positions.
	ver       int64
	gen       int64
	assigned  []tp
	positions map[tp]int64
	next      int

	// epochs are the owner epochs of the partitions as of the last refresh:
	// commits are fenced by them.
	epochsMu sync.Mutex
	epochs   map[tp]int64
}

var _ eventstore.Consumer = (*consumer)(nil)

// JoinGroup adds a member to consumer group group, subscribed to topics, and
// rebalances the group, whose members may be in any Store on the schema.
// The member resumes every partition it is assigned from the group's
// committed offset. Member IDs (WithMemberID) need be unique only within
// this Store: every replica of a service may join with the same fixed ID,
// and DescribeGroup then lists several members of that ID. Its Store renews its lease until it leaves (Close, or
// the Store's Close); a member whose Store stops renewing (a crash, a
// pause) is removed from the group by the other members' Stores once its
// lease runs out, and joins again if it comes back.
func (s *Store) JoinGroup(ctx context.Context, group string, topics []string, opts ...eventstore.ConsumerOption) (eventstore.Consumer, error) {
	if s.closedFlag.Load() {
		return nil, eventstore.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := eventstore.NewConsumerOptions(opts...)
	var errs []error
	errs = append(errs, eventstore.ValidateGroupName(group))
	if len(topics) == 0 {
		errs = append(errs, eventstore.InvalidArgument("topics", "none given"))
	}
	if o.Start != eventstore.Earliest && o.Start != eventstore.Latest {
		errs = append(errs, eventstore.InvalidArgument("WithStartPosition", "unknown position %d", o.Start))
	}
	var ts []*topicMeta
	for _, name := range topics {
		t, err := s.topic(ctx, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("postgres: join group %q: %w", group, err)
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	if o.MemberID == "" {
		o.MemberID = group + "-" + uuid.NewString()[:8]
	}
	c := &consumer{s: s, g: s.group(group), id: o.MemberID, key: s.id.String() + "/" + o.MemberID, topics: ts, opts: o, closed: make(chan struct{}),
		ver: math.MinInt64, gen: math.MinInt64, positions: map[tp]int64{}, epochs: map[tp]int64{}}
	if err := s.join(ctx, c, true); err != nil {
		return nil, err
	}
	s.groupsMu.Lock()
	s.groupsMu.consumers[c] = struct{}{}
	s.groupsMu.Unlock()
	s.signalMembers()
	return c, nil
}

// join inserts c's member row and rebalances. fresh: a new member, which
// must not take an ID in use; otherwise c joins again after its lease ran
// out.
func (s *Store) join(ctx context.Context, c *consumer, fresh bool) error {
	ids := make([]int64, len(c.topics))
	for i, t := range c.topics {
		ids[i] = t.id
	}
	_, err := s.runRebalance(ctx, c.g.name, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, s.q(`SELECT count(*) FROM (SELECT id FROM {s}.topics WHERE id = ANY($1) FOR SHARE) t`), ids).Scan(&n); err != nil {
			return err
		}
		if n != len(ids) {
			for _, t := range c.topics {
				s.forgetTopic(t.id)
			}
			return fmt.Errorf("postgres: join group %q: %w: a topic was deleted", c.g.name, eventstore.ErrTopicNotFound)
		}
		var exists bool
		if err := tx.QueryRow(ctx, s.q(`SELECT EXISTS (SELECT 1 FROM {s}.group_members WHERE group_name = $1 AND member_key = $2)`), c.g.name, c.key).Scan(&exists); err != nil {
			return err
		}
		if exists {
			if fresh {
				return eventstore.InvalidArgument("WithMemberID", "member %q is already in group %q", c.id, c.g.name)
			}
			return nil
		}
		_, err := tx.Exec(ctx, s.q(`INSERT INTO {s}.group_members (group_name, member_key, member_id, topic_ids, store_id, lease_until) VALUES ($1, $2, $3, $4, $5, $6)`),
			c.g.name, c.key, c.id, ids, s.id, s.clk.Now().Add(s.opts.leaseTimeout).UnixNano())
		return err
	})
	if err != nil {
		if errors.Is(err, eventstore.ErrInvalidArgument) || errors.Is(err, eventstore.ErrTopicNotFound) {
			return err
		}
		return s.dbErr(ctx, fmt.Sprintf("join group %q", c.g.name), err)
	}
	return nil
}

// leave removes c from its group and rebalances the others. It is
// idempotent.
func (c *consumer) leave(ctx context.Context) error {
	c.leftMu.Lock()
	defer c.leftMu.Unlock()
	if c.left.Load() {
		return nil
	}
	c.left.Store(true)
	c.s.groupsMu.Lock()
	delete(c.s.groupsMu.consumers, c)
	c.s.groupsMu.Unlock()
	c.s.signalMembers()
	_, err := c.s.runRebalance(ctx, c.g.name, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, c.s.q(`DELETE FROM {s}.group_members WHERE group_name = $1 AND member_key = $2`), c.g.name, c.key)
		return err
	})
	return err
}

func (s *Store) signalMembers() {
	select {
	case s.membersChanged <- struct{}{}:
	default:
	}
}

// ID returns the member's ID.
func (c *consumer) ID() string { return c.id }

// Group returns the name of the member's group.
func (c *consumer) Group() string { return c.g.name }

// Assignment returns the partitions assigned to the member now, as the
// Store last heard (at once for rebalances by this Store; for those of
// other Stores, once their notification arrives).
func (c *consumer) Assignment() []tp {
	select {
	case <-c.closed:
		return nil
	default:
	}
	if c.s.closedFlag.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := c.s.current(ctx, c.g)
	if err != nil {
		c.g.mu.Lock()
		a = c.g.mu.cur
		c.g.mu.Unlock()
		if a == nil {
			return nil
		}
	}
	return slices.Clone(a.members[c.key])
}

// Close leaves the group, which rebalances its partitions over the members
// that remain. A running Records loop ends. Close is idempotent.
func (c *consumer) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		if c.s.acquire() != nil {
			return // the Store's Close has made the member leave
		}
		defer c.s.release()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if e := c.leave(ctx); e != nil {
			err = fmt.Errorf("postgres: member %q leaving group %q: %w", c.id, c.g.name, e)
		}
	})
	return err
}

// refresh brings the member's view of its assignment up to date, loading
// the committed offsets of partitions it newly holds.
func (c *consumer) refresh(ctx context.Context) error {
	ver := c.g.ver.Load()
	if ver == c.ver {
		return nil
	}
	a, err := c.s.current(ctx, c.g)
	if err != nil {
		return err
	}
	assigned := slices.Clone(a.members[c.key])
	if c.left.Load() {
		assigned = nil
	}
	c.epochsMu.Lock()
	oldEpochs := c.epochs
	c.epochsMu.Unlock()
	positions := make(map[tp]int64, len(assigned))
	var needT []int64
	var needP []int32
	var need []tp
	for _, k := range assigned {
		// A partition held without a break keeps its read position; one
		// that went to another member and came back resumes from the
		// group's committed offset.
		if pos, ok := c.positions[k]; ok && oldEpochs[k] == a.epoch[k] {
			positions[k] = pos
			continue
		}
		t := c.topic(k.Topic)
		if t == nil {
			continue
		}
		needT, needP, need = append(needT, t.id), append(needP, int32(k.Partition)), append(need, k)
	}
	if len(need) > 0 {
		rows, err := c.s.pool.Query(ctx, c.s.q(`SELECT u.i, p.start_offset, o.committed
			FROM unnest($2::bigint[], $3::int[]) WITH ORDINALITY AS u(t, p, i)
			JOIN {s}.partitions p ON p.topic_id = u.t AND p.part = u.p
			LEFT JOIN {s}.group_offsets o ON o.group_name = $1 AND o.topic_id = u.t AND o.part = u.p`), c.g.name, needT, needP)
		if err != nil {
			return c.s.dbErr(ctx, fmt.Sprintf("offsets of group %q", c.g.name), err)
		}
		var i, start int64
		var committed *int64
		if _, err := pgx.ForEachRow(rows, []any{&i, &start, &committed}, func() error {
			k := need[i-1]
			switch {
			case committed != nil:
				positions[k] = max(*committed, start)
			case c.opts.Start == eventstore.Latest:
				positions[k] = max(a.endAt[k], start)
			default:
				positions[k] = start
			}
			return nil
		}); err != nil {
			return c.s.dbErr(ctx, fmt.Sprintf("offsets of group %q", c.g.name), err)
		}
	}
	epochs := make(map[tp]int64, len(assigned))
	kept := assigned[:0]
	for _, k := range assigned {
		if _, ok := positions[k]; ok {
			epochs[k] = a.epoch[k]
			kept = append(kept, k)
		}
	}
	c.epochsMu.Lock()
	c.epochs = epochs
	c.epochsMu.Unlock()
	c.positions, c.assigned, c.gen, c.ver = positions, kept, a.generation, ver
	return nil
}

func (c *consumer) topic(name string) *topicMeta {
	for _, t := range c.topics {
		if t.name == name {
			return t
		}
	}
	return nil
}

type fetched struct {
	k   tp
	rec eventstore.Record
}

// fetch reads up to max records of the assigned partitions, from their
// positions, serving the partitions in turn from c.next, in one query. It
// does not move the positions.
func (c *consumer) fetch(ctx context.Context, max int) ([]fetched, error) {
	n := len(c.assigned)
	if n == 0 {
		return nil, nil
	}
	ts := make([]int64, n)
	ps := make([]int32, n)
	fs := make([]int64, n)
	order := make([]tp, n)
	for i := range n {
		k := c.assigned[(c.next+i)%n]
		order[i] = k
		ts[i], ps[i], fs[i] = c.topic(k.Topic).id, int32(k.Partition), c.positions[k]
	}
	rows, err := c.s.pool.Query(ctx, c.s.q(`SELECT u.i, r.off, r.data
		FROM unnest($1::bigint[], $2::int[], $3::bigint[]) WITH ORDINALITY AS u(t, p, f, i)
		CROSS JOIN LATERAL (SELECT off, data FROM {s}.records WHERE topic_id = u.t AND part = u.p AND off >= u.f ORDER BY off LIMIT $4) r
		ORDER BY u.i, r.off LIMIT $4`), ts, ps, fs, max)
	if err != nil {
		return nil, c.s.dbErr(ctx, fmt.Sprintf("poll by member %q of group %q", c.id, c.g.name), err)
	}
	var out []fetched
	var i, off int64
	var data []byte
	served := -1
	_, err = pgx.ForEachRow(rows, []any{&i, &off, &data}, func() error {
		k := order[i-1]
		rec, err := decodeAt(c.topic(k.Topic), k.Partition, off, data)
		if err != nil {
			return err
		}
		if served < 0 {
			served = int(i - 1)
		}
		out = append(out, fetched{k, rec})
		return nil
	})
	if err != nil {
		var corrupt *eventstore.CorruptRecordError
		if errors.As(err, &corrupt) {
			return nil, err
		}
		return nil, c.s.dbErr(ctx, fmt.Sprintf("poll by member %q of group %q", c.id, c.g.name), err)
	}
	if served >= 0 {
		c.next = (c.next + served + 1) % n
	} else {
		c.next = (c.next + 1) % n
	}
	return out, nil
}

// waitCases are what a member with nothing to read waits for: ctx, the
// member's and the store's closing, a rebalance, and a commit to any of its
// topics, in that order. They are taken before the member looks, so that
// nothing after the look is missed.
func (c *consumer) waitCases(ctx context.Context) []reflect.SelectCase {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.closed)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.s.closing)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.g.changed())},
	}
	for _, t := range c.topics {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.s.wakeChan(t.id))})
	}
	return cases
}

// Poll returns up to max records of the member's assigned partitions, in
// offset order per partition, waiting until at least one is available. A
// batch shorter than max means the member had read everything committed
// when Poll looked. Poll advances the member's read position past what it
// returns.
//
// It returns ctx's error when ctx ends first, ErrConsumerClosed after
// Close, and ErrClosed when the store closes. A rebalance that changes the
// member's assignment while it waits ends the wait with an empty batch.
// Records and Poll share the member's position: use one of them at a time.
func (c *consumer) Poll(ctx context.Context, max int) ([]eventstore.Record, error) {
	return c.poll(ctx, max, true)
}

// TryPoll is Poll without the wait: it returns what is available, up to
// max, and an empty batch at once if nothing is.
func (c *consumer) TryPoll(ctx context.Context, max int) ([]eventstore.Record, error) {
	return c.poll(ctx, max, false)
}

func (c *consumer) poll(ctx context.Context, max int, wait bool) ([]eventstore.Record, error) {
	if max <= 0 {
		return nil, eventstore.InvalidArgument("max", "must be positive, got %d", max)
	}
	if err := c.s.acquire(); err != nil {
		return nil, err
	}
	defer c.s.release()
	startGen := int64(math.MinInt64)
	for {
		if c.s.isClosing() {
			return nil, eventstore.ErrClosed
		}
		select {
		case <-c.closed:
			return nil, fmt.Errorf("postgres: poll by member %q of group %q: %w", c.id, c.g.name, eventstore.ErrConsumerClosed)
		default:
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cases := c.waitCases(ctx)
		if err := c.refresh(ctx); err != nil {
			return nil, err
		}
		if startGen == math.MinInt64 {
			startGen = c.gen
		}
		got, err := c.fetch(ctx, max)
		if err != nil {
			return nil, err
		}
		if len(got) > 0 {
			out := make([]eventstore.Record, len(got))
			for i, f := range got {
				out[i] = f.rec
				c.positions[f.k] = f.rec.Offset + 1
			}
			return out, nil
		}
		if c.s.isClosing() {
			return nil, eventstore.ErrClosed
		}
		if !wait || c.gen != startGen {
			return nil, nil
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return nil, ctx.Err()
		case 1:
			return nil, fmt.Errorf("postgres: poll by member %q of group %q: %w", c.id, c.g.name, eventstore.ErrConsumerClosed)
		case 2:
			return nil, eventstore.ErrClosed
		}
	}
}

// Records yields the records of the member's assigned partitions: first what
// is in the log from the committed offsets, then new records as they are
// committed. After a rebalance it stops delivering revoked partitions and
// starts the new ones from their committed offsets. It runs until ctx ends
// (no error; a ctx already done when it starts yields ctx.Err()), the loop
// breaks, the consumer closes (no error), or the store closes (ErrClosed).
func (c *consumer) Records(ctx context.Context) iter.Seq2[eventstore.Record, error] {
	return func(yield func(eventstore.Record, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		if err := c.s.acquire(); err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		defer c.s.release()
		for {
			select {
			case <-c.closed:
				return
			default:
			}
			if c.s.isClosing() {
				yield(eventstore.Record{}, eventstore.ErrClosed)
				return
			}
			cases := c.waitCases(ctx)
			err := c.refresh(ctx)
			var got []fetched
			if err == nil {
				got, err = c.fetch(ctx, readChunk)
			}
			if err != nil {
				if ctx.Err() == nil {
					if c.s.isClosing() {
						err = eventstore.ErrClosed
					}
					yield(eventstore.Record{}, err)
				}
				return
			}
			for _, f := range got {
				if c.g.ver.Load() != c.ver {
					break // rebalanced: look at the assignment first
				}
				c.positions[f.k] = f.rec.Offset + 1
				if !yield(f.rec, nil) {
					return
				}
			}
			if len(got) > 0 {
				continue
			}
			chosen, _, _ := reflect.Select(cases)
			switch chosen {
			case 0, 1:
				return
			case 2:
				yield(eventstore.Record{}, eventstore.ErrClosed)
				return
			}
		}
	}
}

// Rewind moves the member's read position on every partition it holds back
// to the group's committed offset (or where an uncommitted partition
// starts). Call it from the polling goroutine.
func (c *consumer) Rewind(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.s.acquire(); err != nil {
		return err
	}
	defer c.s.release()
	c.ver = math.MinInt64
	clear(c.positions)
	return c.refresh(ctx)
}

// Commit commits the offset after rec for rec's partition. It fails with
// ErrNotAssigned if the partition is no longer assigned to this member.
func (c *consumer) Commit(ctx context.Context, rec eventstore.Record) error {
	return c.CommitOffsets(ctx, map[tp]int64{{Topic: rec.Topic, Partition: rec.Partition}: rec.Offset + 1})
}

// CommitOffsets durably commits, in one transaction, the next offset to
// read for each partition. Every partition must be assigned to this member
// in the database at commit, with the owner epoch the member last read it
// under (else ErrNotAssigned and nothing is committed).
func (c *consumer) CommitOffsets(ctx context.Context, offsets map[tp]int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.s.acquire(); err != nil {
		return err
	}
	defer c.s.release()
	dbctx := context.WithoutCancel(ctx)
	conn, err := c.s.pool.Acquire(dbctx)
	if err != nil {
		return c.s.dbErr(ctx, "commit offsets", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(dbctx, "BEGIN"); err != nil {
		rollback(conn)
		return c.s.dbErr(ctx, "commit offsets", err)
	}
	b := &pgx.Batch{}
	if err := c.s.stageOffsets(dbctx, conn, b, []txnOffsets{{c: c, offsets: offsets}}); err != nil {
		rollback(conn)
		return err
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(dbctx, b).Close(); err != nil {
		rollback(conn)
		return c.s.dbErr(ctx, fmt.Sprintf("commit offsets of group %q", c.g.name), err)
	}
	return nil
}

// stageOffsets checks, in the transaction on conn, that every partition of
// the commits is its member's with the epoch it read under, holding the
// groups' rows in share mode (in name order) so that no rebalance can come
// in between, and queues the offset writes onto b.
func (s *Store) stageOffsets(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, commits []txnOffsets) error {
	var groups []string
	for _, c := range commits {
		if !slices.Contains(groups, c.c.g.name) {
			groups = append(groups, c.c.g.name)
		}
	}
	slices.Sort(groups)
	for _, g := range groups {
		if _, err := conn.Exec(ctx, s.q(`SELECT 1 FROM {s}.groups WHERE name = $1 FOR SHARE`), g); err != nil {
			return s.dbErr(ctx, "commit offsets", err)
		}
	}
	for _, cm := range commits {
		c := cm.c
		select {
		case <-c.closed:
			return fmt.Errorf("postgres: commit by member %q that left group %q: %w", c.id, c.g.name, eventstore.ErrNotAssigned)
		default:
		}
		if len(cm.offsets) == 0 {
			continue
		}
		var ts []int64
		var ps []int32
		var ks []tp
		for k := range cm.offsets {
			t := c.topic(k.Topic)
			if t == nil {
				return fmt.Errorf("postgres: commit %s for group %q: %w", k, c.g.name, eventstore.ErrNotAssigned)
			}
			ts, ps, ks = append(ts, t.id), append(ps, int32(k.Partition)), append(ks, k)
		}
		rows, err := conn.Query(ctx, s.q(`SELECT u.i, gp.owner, gp.epoch, p.next_offset
			FROM unnest($2::bigint[], $3::int[]) WITH ORDINALITY AS u(t, p, i)
			LEFT JOIN {s}.partitions p ON p.topic_id = u.t AND p.part = u.p
			LEFT JOIN {s}.group_partitions gp ON gp.group_name = $1 AND gp.topic_id = u.t AND gp.part = u.p`), c.g.name, ts, ps)
		if err != nil {
			return s.dbErr(ctx, "commit offsets", err)
		}
		type row struct {
			member *string
			epoch  *int64
			end    *int64
		}
		got := make([]row, len(ks))
		var i int64
		var r row
		if _, err := pgx.ForEachRow(rows, []any{&i, &r.member, &r.epoch, &r.end}, func() error {
			got[i-1] = r
			return nil
		}); err != nil {
			return s.dbErr(ctx, "commit offsets", err)
		}
		c.epochsMu.Lock()
		epochs := c.epochs
		c.epochsMu.Unlock()
		for j, k := range ks {
			r := got[j]
			if r.member == nil || *r.member != c.key || r.end == nil {
				return fmt.Errorf("postgres: commit %s for group %q: %w", k, c.g.name, eventstore.ErrNotAssigned)
			}
			if e, read := epochs[k]; read && e != *r.epoch {
				return fmt.Errorf("postgres: commit %s for group %q: reassigned since it was read: %w", k, c.g.name, eventstore.ErrNotAssigned)
			}
			off := cm.offsets[k]
			if off < 0 || off > *r.end {
				return eventstore.InvalidArgument("offset", "%d for %s is outside [0, %d]", off, k, *r.end)
			}
			b.Queue(s.q(`INSERT INTO {s}.group_offsets (group_name, topic_id, part, committed) VALUES ($1, $2, $3, $4)
				ON CONFLICT (group_name, topic_id, part) DO UPDATE SET committed = excluded.committed`), c.g.name, ts[j], ps[j], off)
		}
	}
	return nil
}

// CommittedOffset returns the offset group will resume topic's partition
// from, and false if it has never committed one.
func (s *Store) CommittedOffset(ctx context.Context, group, topic string, partition int) (int64, bool, error) {
	if err := eventstore.ValidateGroupName(group); err != nil {
		return 0, false, err
	}
	t, err := s.topic(ctx, topic)
	if err != nil {
		return 0, false, err
	}
	if err := checkPartition(t, partition); err != nil {
		return 0, false, err
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	if err := s.acquire(); err != nil {
		return 0, false, err
	}
	defer s.release()
	var off int64
	err = s.pool.QueryRow(ctx, s.q(`SELECT committed FROM {s}.group_offsets WHERE group_name = $1 AND topic_id = $2 AND part = $3`), group, t.id, partition).Scan(&off)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.dbErr(ctx, fmt.Sprintf("committed offset of group %q on %s/%d", group, topic, partition), err)
	}
	return off, true, nil
}

// DescribeGroup returns a group's members (in every Store), assignments
// and, per partition, committed offset and lag. A group without members but
// with committed offsets is described from its offsets.
func (s *Store) DescribeGroup(ctx context.Context, group string) (eventstore.GroupInfo, error) {
	if err := eventstore.ValidateGroupName(group); err != nil {
		return eventstore.GroupInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.GroupInfo{}, err
	}
	if err := s.acquire(); err != nil {
		return eventstore.GroupInfo{}, err
	}
	defer s.release()
	info := eventstore.GroupInfo{Name: group}
	fail := func(err error) (eventstore.GroupInfo, error) {
		return eventstore.GroupInfo{}, s.dbErr(ctx, fmt.Sprintf("describe group %q", group), err)
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	err = tx.QueryRow(ctx, s.q(`SELECT generation FROM {s}.groups WHERE name = $1`), group).Scan(&info.Generation)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fail(err)
	}
	rows, err := tx.Query(ctx, s.q(`SELECT m.member_key, m.member_id, array(SELECT t.name FROM {s}.topics t WHERE t.id = ANY (m.topic_ids))
		FROM {s}.group_members m WHERE m.group_name = $1 ORDER BY m.member_key`), group)
	if err != nil {
		return fail(err)
	}
	byKey := map[string]int{}
	var key string
	var mi eventstore.MemberInfo
	if _, err := pgx.ForEachRow(rows, []any{&key, &mi.ID, &mi.Topics}, func() error {
		byKey[key] = len(info.Members)
		info.Members = append(info.Members, eventstore.MemberInfo{ID: mi.ID, Topics: slices.Clone(mi.Topics)})
		return nil
	}); err != nil {
		return fail(err)
	}
	rows, err = tx.Query(ctx, s.q(`SELECT t.name, p.part, gp.owner, o.committed, p.next_offset, p.start_offset
		FROM {s}.partitions p JOIN {s}.topics t ON t.id = p.topic_id
		LEFT JOIN {s}.group_partitions gp ON gp.group_name = $1 AND gp.topic_id = p.topic_id AND gp.part = p.part
		LEFT JOIN {s}.group_offsets o ON o.group_name = $1 AND o.topic_id = p.topic_id AND o.part = p.part
		WHERE gp.owner IS NOT NULL OR o.committed IS NOT NULL`), group)
	if err != nil {
		return fail(err)
	}
	var name string
	var part int32
	var owner *string
	var committed *int64
	var end, start int64
	committedAny := false
	if _, err := pgx.ForEachRow(rows, []any{&name, &part, &owner, &committed, &end, &start}, func() error {
		gp := eventstore.GroupPartitionInfo{TopicPartition: tp{Topic: name, Partition: int(part)}, Committed: -1, End: end}
		pos := start
		if owner != nil {
			if i, ok := byKey[*owner]; ok {
				gp.Member = info.Members[i].ID
				info.Members[i].Assignment = append(info.Members[i].Assignment, gp.TopicPartition)
			}
		}
		if committed != nil {
			committedAny = true
			gp.Committed = *committed
			pos = max(*committed, pos)
		}
		gp.Lag = max(gp.End-pos, 0)
		info.Partitions = append(info.Partitions, gp)
		return nil
	}); err != nil {
		return fail(err)
	}
	// Members of different Stores may share an ID: the order among them is
	// their keys'.
	slices.SortStableFunc(info.Members, func(a, b eventstore.MemberInfo) int { return cmp.Compare(a.ID, b.ID) })
	if len(info.Members) == 0 && !committedAny {
		return eventstore.GroupInfo{}, fmt.Errorf("%w: %q", eventstore.ErrGroupNotFound, group)
	}
	for i := range info.Members {
		sortTPs(info.Members[i].Assignment)
	}
	slices.SortFunc(info.Partitions, func(a, b eventstore.GroupPartitionInfo) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	return info, nil
}

// ListGroups returns the names of the groups that have members (in any
// Store) or committed offsets, sorted.
func (s *Store) ListGroups(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.acquire(); err != nil {
		return nil, err
	}
	defer s.release()
	rows, err := s.pool.Query(ctx, s.q(`SELECT group_name FROM {s}.group_members UNION SELECT group_name FROM {s}.group_offsets`))
	if err != nil {
		return nil, s.dbErr(ctx, "list groups", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.dbErr(ctx, "list groups", err)
	}
	slices.Sort(names)
	return names, nil
}

// runLeases renews the leases of this Store's members, a third of the
// lease timeout apart, makes a member whose lease ran out (the Store was
// paused) join again, and rebalances a group as soon as a member of another
// Store in it has let its lease run out. It waits on the store's clock for
// the next of these, and wakes early when members join or leave.
func (s *Store) runLeases() {
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	renewAt := s.clk.Now()
	for {
		now := s.clk.Now()
		renew := !now.Before(renewAt)
		next, active := s.leaseRound(ctx, renew)
		if ctx.Err() != nil {
			return
		}
		if renew {
			renewAt = now.Add(s.opts.leaseTimeout / 3)
		}
		if renewAt.Before(next) {
			next = renewAt
		}
		var due <-chan time.Time
		stop := func() {}
		if active {
			due, stop = s.clk.At(next)
		}
		select {
		case <-s.closing:
			stop()
			return
		case <-s.membersChanged:
		case <-due:
		}
		stop()
	}
}

// leaseRound does one round of runLeases: renewing (when renew is set:
// only on the store's own clock, never because another Store's news woke
// it, so that a paused Store stays paused) and rebalancing groups with
// members whose leases ran out. It returns when the next lease runs out,
// and false if this Store has no members.
func (s *Store) leaseRound(ctx context.Context, renew bool) (time.Time, bool) {
	s.groupsMu.Lock()
	live := map[[2]string]*consumer{}
	var groups []string
	for c := range s.groupsMu.consumers {
		live[[2]string{c.g.name, c.key}] = c
		if !slices.Contains(groups, c.g.name) {
			groups = append(groups, c.g.name)
		}
	}
	s.groupsMu.Unlock()
	now := s.clk.Now()
	next := now.Add(s.opts.leaseTimeout)
	if len(live) == 0 {
		return next, false
	}
	if renew {
		s.renew(ctx, now, live)
	}
	return s.expire(ctx, now, next, groups), true
}

// renew renews the leases of this Store's members and makes those that lost
// their group while the Store was away join again.
func (s *Store) renew(ctx context.Context, now time.Time, live map[[2]string]*consumer) {
	rows, err := s.pool.Query(ctx, s.q(`UPDATE {s}.group_members SET lease_until = $2 WHERE store_id = $1 RETURNING group_name, member_key`),
		s.id, now.Add(s.opts.leaseTimeout).UnixNano())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("postgres: renewing leases failed", telemetry.AttrError, err)
		}
		return
	}
	var g, m string
	renewed := map[[2]string]bool{}
	if _, err := pgx.ForEachRow(rows, []any{&g, &m}, func() error {
		renewed[[2]string{g, m}] = true
		return nil
	}); err != nil {
		if ctx.Err() == nil {
			s.log.Warn("postgres: renewing leases failed", telemetry.AttrError, err)
		}
		return
	}
	for k, c := range live {
		if renewed[k] {
			continue
		}
		if c.left.Load() {
			continue
		}
		// Removed while this Store was away: join again.
		s.log.Warn("postgres: member lost its group while its lease was out; joining again", "group", k[0], "member", k[1])
		if err := s.join(ctx, c, false); err != nil && ctx.Err() == nil {
			s.log.Warn("postgres: joining again failed", "group", k[0], "member", k[1], telemetry.AttrError, err)
		}
	}
}

// expire rebalances the groups in which a member of another Store let its
// lease run out, and returns when the next such lease runs out (or next).
func (s *Store) expire(ctx context.Context, now, next time.Time, groups []string) time.Time {
	rows, err := s.pool.Query(ctx, s.q(`SELECT group_name, min(lease_until), bool_or(lease_until < $3) FROM {s}.group_members
		WHERE group_name = ANY($1) AND store_id <> $2 GROUP BY group_name`), groups, s.id, now.UnixNano())
	if err != nil {
		return next
	}
	var g string
	var until int64
	var expired bool
	var due []string
	if _, err := pgx.ForEachRow(rows, []any{&g, &until, &expired}, func() error {
		if expired {
			due = append(due, g)
		} else if t := time.Unix(0, until+1); t.Before(next) {
			next = t
		}
		return nil
	}); err != nil {
		return next
	}
	for _, g := range due {
		if _, err := s.runRebalance(ctx, g, nil); err != nil && ctx.Err() == nil {
			s.log.Warn("postgres: rebalancing after a lease ran out failed", "group", g, telemetry.AttrError, err)
		}
	}
	return next
}
