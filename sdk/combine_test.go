package sdk

import (
	"strings"
	"testing"
)

// TestPartialCodec: both kinds of what a combiner sends survive the
// exchange's encoding, keys longer than a one-byte length included.
func TestPartialCodec(t *testing.T) {
	c := partialCodec[string, mrec, mAgg]{k: CodecFor[string](), v: CodecFor[mrec](), a: CodecFor[mAgg]()}
	for _, p := range []mPartial{
		{Key: "a", Raw: true, V: mrec{Key: "a", TS: -5, V: 3, ID: 7}},
		{Key: "a", Pane: TimeWindow{-100, 200}, Acc: mAgg{S: 4, N: 2}},
		{Key: strings.Repeat("k", 300), Pane: TimeWindow{0, 1}, Acc: mAgg{S: 1, N: 1}},
		{Key: "", Pane: TimeWindow{5, 10}},
	} {
		b := c.Append([]byte("x"), p)
		got, err := c.Decode(b[1:])
		if err != nil {
			t.Fatalf("decode %+v: %v", p, err)
		}
		if got.Raw != p.Raw || !p.Raw && got.Key != p.Key || got.Pane != p.Pane || got.V != p.V || got.Acc != p.Acc {
			t.Errorf("round trip of %+v gave %+v", p, got)
		}
	}
	if _, err := c.Decode(nil); err == nil {
		t.Error("an empty record decoded")
	}
}
