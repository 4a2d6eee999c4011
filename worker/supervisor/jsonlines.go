package supervisor

import (
	"encoding/json"
	"log/slog"
	"sort"
	"strings"
)

// parseJSONLine reads a line a job process logged with slog's JSON handler
// (as it does when its worker logs JSON), so the worker can re-log it with
// its level, message and attributes as fields of its own record instead of
// text inside one. Keys the worker's logger already carries (time, job,
// attempt) are dropped. ok is false for any other line.
func parseJSONLine(line string) (level slog.Level, msg string, attrs []slog.Attr, ok bool) {
	if !strings.HasPrefix(line, "{") {
		return 0, "", nil, false
	}
	var fields map[string]any
	if json.Unmarshal([]byte(line), &fields) != nil {
		return 0, "", nil, false
	}
	m, ok := fields["msg"].(string)
	if !ok {
		return 0, "", nil, false
	}
	if lv, ok := fields["level"].(string); !ok || level.UnmarshalText([]byte(lv)) != nil {
		level = slog.LevelInfo
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		switch k {
		case "msg", "level", "time", "job", "attempt":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	return level, m, attrs, true
}
