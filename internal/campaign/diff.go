package campaign

import (
	"encoding/json"
	"sort"
)

// TopLevelDiff returns the ops that turn from into to, one per top-level
// field (the root itself cannot be edited), and their paths.
func TopLevelDiff(from, to Document) ([]Op, []string) {
	var ops []Op
	var keys []string
	names := make([]string, 0, len(from)+len(to))
	for k := range from {
		names = append(names, k)
	}
	for k := range to {
		if _, ok := from[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		path := Pointer{k}
		old, had := from[k]
		val, has := to[k]
		switch {
		case had && !has:
			ops = append(ops, Op{Op: "remove", Path: path.String()})
		case has:
			raw, _ := json.Marshal(val)
			if had {
				if oldRaw, _ := json.Marshal(old); string(oldRaw) == string(raw) {
					continue
				}
				ops = append(ops, Op{Op: "replace", Path: path.String(), Value: raw})
			} else {
				ops = append(ops, Op{Op: "add", Path: path.String(), Value: raw})
			}
		default:
			continue
		}
		keys = append(keys, path.String())
	}
	return ops, keys
}
