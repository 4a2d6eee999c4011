package keygroup

import "testing"

func TestDefaultMaxParallelism(t *testing.T) {
	for _, tc := range []struct{ p, want int }{
		{-1, 128},
		{0, 128},
		{1, 128},
		{85, 128},  // 85+42 = 127
		{86, 256},  // 86+43 = 129
		{100, 256}, // 150
		{1000, 2048},
		{21844, 32768}, // 32766 rounds up to 32768
		{21846, 32768}, // 32769 is capped
		{30000, 32768},
		{1 << 40, 32768},
	} {
		if got := DefaultMaxParallelism(tc.p); got != tc.want {
			t.Errorf("DefaultMaxParallelism(%d) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

// Range must be the exact inverse of Subtask: every group is owned by the
// subtask whose range contains it, ranges tile [0, max) without gaps.
func TestRangeInvertsSubtask(t *testing.T) {
	for _, maxP := range []int{128, 256, 1000} {
		for p := 1; p <= 130 && p <= maxP; p++ {
			next := 0
			for s := 0; s < p; s++ {
				start, end := Range(s, p, maxP)
				if start != next {
					t.Fatalf("max=%d p=%d s=%d: range starts at %d, want %d", maxP, p, s, start, next)
				}
				for g := start; g < end; g++ {
					if got := Subtask(g, maxP, p); got != s {
						t.Fatalf("max=%d p=%d: group %d in range of %d but Subtask says %d", maxP, p, g, s, got)
					}
				}
				next = end
			}
			if next != maxP {
				t.Fatalf("max=%d p=%d: ranges end at %d", maxP, p, next)
			}
		}
	}
}

func TestHashIsStable(t *testing.T) {
	// Pinned: changing the hash would orphan every stored key.
	if got := Hash([]byte("k1")); got != 0xdfa4515ddff407d3 {
		t.Fatalf("Hash(k1) = %#x, want 0xdfa4515ddff407d3", got)
	}
}
