package model

// eachPos calls fn with the position of every element of m.
func (m *Model) eachPos(fn func(*Pos)) {
	fn(&m.Pos)
	for _, c := range m.Contexts {
		fn(&c.Pos)
		for _, t := range c.Types {
			fn(&t.Pos)
			fieldsPos(t.Fields, fn)
		}
		for _, a := range c.Aggregates {
			fn(&a.Pos)
			for _, cmd := range a.Commands {
				fn(&cmd.Pos)
				fieldsPos(cmd.Fields, fn)
				if cmd.HTTP != nil {
					fn(&cmd.HTTP.Pos)
				}
			}
			for _, e := range a.Events {
				fn(&e.Pos)
				fieldsPos(e.Fields, fn)
			}
			for _, e := range a.Errors {
				fn(&e.Pos)
			}
			for _, s := range a.Scenarios {
				fn(&s.Pos)
				for _, g := range s.Given {
					fn(&g.Pos)
				}
				if s.When != nil {
					fn(&s.When.Pos)
				}
				for _, t := range s.Then {
					fn(&t.Pos)
				}
			}
		}
		for _, r := range c.ReadModels {
			fn(&r.Pos)
			fieldsPos(r.Fields, fn)
			if r.HTTP != nil {
				fn(&r.HTTP.Pos)
			}
		}
		for _, p := range c.Policies {
			fn(&p.Pos)
		}
		for _, e := range c.Externals {
			fn(&e.Pos)
		}
		sagasPos(c.Sagas, fn)
		for _, h := range c.Hotspots {
			fn(&h.Pos)
		}
	}
	sagasPos(m.Sagas, fn)
	for _, h := range m.Hotspots {
		fn(&h.Pos)
	}
	for _, u := range m.Unresolved {
		fn(&u.Pos)
	}
}

func fieldsPos(l FieldList, fn func(*Pos)) {
	for _, f := range l {
		fn(&f.Pos)
	}
}

func sagasPos(sagas []*Saga, fn func(*Pos)) {
	for _, s := range sagas {
		fn(&s.Pos)
		for _, r := range s.ReactsTo {
			fn(&r.Pos)
		}
		if s.Timeout != nil {
			fn(&s.Timeout.Pos)
		}
	}
}
