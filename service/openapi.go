package service

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
)

// mergeOpenAPI merges swagger v2 documents into one titled title: their
// paths, definitions, tags, consumes and produces. Documents that define a
// path or a definition differently are refused, naming it.
func mergeOpenAPI(title string, docs [][]byte) ([]byte, error) {
	paths := map[string]any{}
	defs := map[string]any{}
	var tags []any
	seenTag := map[string]bool{}
	consumes, produces := map[string]bool{}, map[string]bool{}
	for i, raw := range docs {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, fmt.Errorf("service: OpenAPI document %d is not a JSON object: %w", i, err)
		}
		if v, _ := d["swagger"].(string); v != "2.0" {
			return nil, fmt.Errorf("service: OpenAPI document %d is not swagger 2.0 (swagger: %v)", i, d["swagger"])
		}
		for _, part := range []struct {
			name string
			into map[string]any
		}{{"paths", paths}, {"definitions", defs}} {
			m, _ := d[part.name].(map[string]any)
			for k, v := range m {
				if old, ok := part.into[k]; ok && !reflect.DeepEqual(old, v) {
					return nil, fmt.Errorf("service: OpenAPI document %d defines %s %q differently from an earlier one", i, part.name, k)
				}
				part.into[k] = v
			}
		}
		ts, _ := d["tags"].([]any)
		for _, t := range ts {
			if m, ok := t.(map[string]any); ok {
				n, _ := m["name"].(string)
				if seenTag[n] {
					continue
				}
				seenTag[n] = true
			}
			tags = append(tags, t)
		}
		for _, l := range []struct {
			name string
			into map[string]bool
		}{{"consumes", consumes}, {"produces", produces}} {
			vs, _ := d[l.name].([]any)
			for _, v := range vs {
				if s, ok := v.(string); ok {
					l.into[s] = true
				}
			}
		}
	}
	out := map[string]any{
		"swagger":     "2.0",
		"info":        map[string]any{"title": title, "version": "v1"},
		"paths":       paths,
		"definitions": defs,
		"consumes":    slices.Sorted(maps.Keys(consumes)),
		"produces":    slices.Sorted(maps.Keys(produces)),
	}
	if len(tags) > 0 {
		out["tags"] = tags
	}
	return json.MarshalIndent(out, "", "  ")
}
