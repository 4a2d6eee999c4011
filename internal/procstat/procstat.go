package procstat

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	weirv1 "github.com/weir-run/weir/proto/weir/v1"
)

// Memory reads the process's runtime statistics. ReadMemStats stops the
// world briefly: call it about once a second, as Prometheus clients do.
func Memory() *weirv1.MemoryStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &weirv1.MemoryStats{RssBytes: RSS(), HeapAllocBytes: int64(ms.HeapAlloc), HeapSysBytes: int64(ms.HeapSys),
		NumGc: ms.NumGC, GcPauseTotalNs: int64(ms.PauseTotalNs), Goroutines: int32(runtime.NumGoroutine())}
}

// RSS is the process's resident memory, from /proc on Linux; 0 elsewhere.
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// CPU is the CPU time, user and system, the process has used so far; 0 if
// the system does not say.
func CPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
