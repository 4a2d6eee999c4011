package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/weir-run/weir/internal/uvarintframe"
	"github.com/weir-run/weir/sdk"
)

// Lines reads the lines of a file, or of every visible file of a directory
// (sorted by name), without their line endings. Each file is split into
// byte ranges dealt to the subtasks; a line belongs to the range its first
// byte is in, so every line is read exactly once whatever the parallelism. The
// position within each range is checkpointed, so a restored job resumes at
// the line after its checkpoint, at any parallelism.
func Lines(p *sdk.Pipeline, path string, opts ...sdk.Option) sdk.Stream[string] {
	return sdk.NewSource(p, "Lines", func(t sdk.TaskInfo) (sdk.SourceReader[string], error) {
		if splits, restored, err := sdk.RestoredSplits(t, decodeSplit, dealSplits); err != nil {
			return nil, err
		} else if restored {
			return &lineReader{splits: splits}, nil
		}
		files, err := listInputs(path)
		if err != nil {
			return nil, err
		}
		return newLineReader(files, t.Subtask(), t.Parallelism(), chunkBytes), nil
	}, append([]sdk.Option{sdk.WithName("Lines")}, opts...)...)
}

// chunkBytes bounds the byte ranges a file is dealt out in.
const chunkBytes = 1 << 20

// newLineReader reads subtask i's byte ranges of every file: a file is cut
// into p equal ranges, or for a file above p chunks, into chunks dealt round
// robin (chunkBytes; tests pass smaller ones). Logs and event files are roughly in time order, and one contiguous
// range per subtask would put the subtasks' records far apart in event time:
// the watermark, the minimum over them, would hold every window open until
// the end. Dealt chunks keep the subtasks within p chunks of each other.
func newLineReader(files []inputFile, i, p int, chunk int64) *lineReader {
	r := &lineReader{}
	for _, f := range files {
		size := max((f.size+int64(p)-1)/int64(p), 1)
		if p > 1 && f.size > int64(p)*chunk {
			size = chunk
		}
		for k, start := 0, int64(0); start < f.size; k, start = k+1, start+size {
			if k%p == i {
				r.splits = append(r.splits, split{path: f.path, pos: start, end: min(start+size, f.size)})
			}
		}
	}
	return r
}

// missingInput says which input is missing and where it was looked for,
// and wraps the stat error (fs.ErrNotExist).
type missingInput struct {
	msg string
	err error
}

func (e *missingInput) Error() string { return e.msg }
func (e *missingInput) Unwrap() error { return e.err }

type inputFile struct {
	path string
	size int64
}

func listInputs(path string) ([]inputFile, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// Retrying cannot make it appear: fail the job at once.
		where := ""
		if !filepath.IsAbs(path) {
			wd, _ := os.Getwd()
			where = fmt.Sprintf(" (a relative path is read from the job process's directory %s: give an absolute path the workers can read)", wd)
		}
		return nil, sdk.Permanent(&missingInput{fmt.Sprintf("input %s does not exist%s", path, where), err})
	}
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	if !st.IsDir() {
		return []inputFile{{path, st.Size()}}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	var files []inputFile
	for _, e := range entries {
		if e.IsDir() || hidden(e.Name()) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("input: %w", err)
		}
		files = append(files, inputFile{filepath.Join(path, e.Name()), info.Size()})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, nil
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") }

// split is the byte range [pos, end) of one file still to read. aligned says
// pos is at a line start (true once reading began); a fresh split's pos may
// be mid-line, and that line belongs to the previous range.
// dealSplits gives subtask i of p its share of every old subtask's
// remaining splits. With fewer splits than subtasks each is cut into k byte
// ranges (a line belongs to the range it starts in, as for the first
// split), so that every subtask has work after a rescale up; a subtask with
// none would finish at once, and the job could not checkpoint again. Every
// subtask computes the same list from the same items, so the shares are
// disjoint and cover them all.
func dealSplits(olds []split, i, p int) []split {
	k := int64(1)
	if m := len(olds); m > 0 && m < p {
		k = int64((p + m - 1) / m)
	}
	var mine []split
	idx := 0
	for _, sp := range olds {
		size := max((sp.end-sp.pos+k-1)/k, 1)
		for j := range k {
			part := sp
			part.pos = min(sp.pos+j*size, sp.end)
			part.end = min(part.pos+size, sp.end)
			if j > 0 {
				part.aligned = false // starts mid-line, maybe
			}
			if j == k-1 {
				part.end = sp.end
			}
			if idx%p == i && part.pos < part.end {
				mine = append(mine, part)
			}
			idx++
		}
	}
	return mine
}

type split struct {
	path     string
	pos, end int64
	aligned  bool
}

func (s split) encode() []byte {
	b := uvarintframe.AppendString(nil, s.path)
	b = uvarintframe.AppendVarints(b, s.pos, s.end)
	if s.aligned {
		return append(b, 1)
	}
	return append(b, 0)
}

var errCorruptSplit = errors.New("file: corrupt split state")

func decodeSplit(b []byte) (split, error) {
	r := uvarintframe.NewReader(b)
	s := split{path: r.Str()}
	s.pos = r.Varint()
	s.end = r.Varint()
	s.aligned = r.Byte() == 1
	if err := r.Done(); err != nil {
		return split{}, fmt.Errorf("%w: %w", errCorruptSplit, err)
	}
	return s, nil
}

type lineReader struct {
	splits []split // splits[0] is being read
	f      *os.File
	r      *bufio.Reader
}

// open starts reading splits[0].
func (l *lineReader) open() error {
	s := &l.splits[0]
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	l.f = f
	seek := s.pos
	if !s.aligned && s.pos > 0 {
		// The line straddling pos belongs to the previous range: skip
		// through the first newline at or after pos-1.
		seek = s.pos - 1
	}
	if _, err := f.Seek(seek, io.SeekStart); err != nil {
		return fmt.Errorf("input: %w", err)
	}
	l.r = bufio.NewReaderSize(f, 256<<10)
	if !s.aligned && s.pos > 0 {
		n, err := skipLine(l.r)
		s.pos = seek + n
		if err == io.EOF {
			s.pos = s.end
		} else if err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	s.aligned = true
	return nil
}

// skipLine consumes through the next newline and says how many bytes it took.
func skipLine(r *bufio.Reader) (int64, error) {
	var n int64
	for {
		b, err := r.ReadSlice('\n')
		n += int64(len(b))
		if !errors.Is(err, bufio.ErrBufferFull) {
			return n, err
		}
	}
}

func (l *lineReader) Poll(emit func(string)) (sdk.Poll, error) {
	for range 1024 {
		if len(l.splits) == 0 {
			return sdk.Poll{Done: true}, nil
		}
		s := &l.splits[0]
		if s.pos >= s.end {
			l.closeFile()
			l.splits = l.splits[1:]
			continue
		}
		if l.f == nil {
			if err := l.open(); err != nil {
				return sdk.Poll{}, err
			}
			continue
		}
		line, err := l.r.ReadString('\n')
		if len(line) > 0 {
			s.pos += int64(len(line))
			line = strings.TrimSuffix(line, "\n")
			line = strings.TrimSuffix(line, "\r")
			emit(line)
		}
		if err == io.EOF {
			s.pos = s.end
		} else if err != nil {
			return sdk.Poll{}, fmt.Errorf("input: %w", err)
		}
	}
	return sdk.Poll{}, nil
}

// SnapshotSplits records every unfinished split with its position.
func (l *lineReader) SnapshotSplits() ([][]byte, error) {
	var items [][]byte
	for _, s := range l.splits {
		if s.pos < s.end {
			items = append(items, s.encode())
		}
	}
	return items, nil
}

func (l *lineReader) closeFile() {
	if l.f != nil {
		l.f.Close()
		l.f, l.r = nil, nil
	}
}

func (l *lineReader) Close() error {
	l.closeFile()
	return nil
}
