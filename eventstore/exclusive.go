package eventstore

// Exclusive reports that no other process writes the store while it is
// open: Open locks its directory (a second Open fails with ErrLocked), and
// OpenMem's files belong to the process. It is always true.
//
// It is an optional ability of a backend, found by type assertion on
// interface{ Exclusive() bool }: a layer that keeps in memory what it wrote
// to the store may trust that memory only on an exclusive store. The
// command bus answers "this command ID is new" from its in-memory filter
// only then; on a store that several processes share (the PostgreSQL
// backend, which does not have the method) it reads the store for every
// command ID, since another replica may have recorded it.
func (s *PebbleStore) Exclusive() bool { return true }
