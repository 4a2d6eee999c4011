package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/weir-run/weir/sdk"
)

// Lines reads the lines of a file, or of every visible file of a directory
// (sorted by name), without their line endings. Each file is split into equal
// byte ranges, one per subtask; a line belongs to the range its first byte is
// in, so every line is read exactly once whatever the parallelism.
func Lines(p *sdk.Pipeline, path string, opts ...sdk.Option) sdk.Stream[string] {
	return sdk.NewSource(p, "Lines", func(t sdk.TaskInfo) (sdk.SourceReader[string], error) {
		files, err := listInputs(path)
		if err != nil {
			return nil, err
		}
		return &lineReader{files: files, subtask: int64(t.Subtask()), parallelism: int64(t.Parallelism())}, nil
	}, append([]sdk.Option{sdk.WithName("Lines")}, opts...)...)
}

type inputFile struct {
	path string
	size int64
}

func listInputs(path string) ([]inputFile, error) {
	st, err := os.Stat(path)
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

type lineReader struct {
	files                []inputFile
	subtask, parallelism int64
	next                 int // index of the next file to open
	f                    *os.File
	r                    *bufio.Reader
	pos, end             int64 // offset of the next line start; end of this subtask's range
}

func (l *lineReader) open() error {
	in := l.files[l.next]
	l.next++
	start := in.size * l.subtask / l.parallelism
	l.end = in.size * (l.subtask + 1) / l.parallelism
	if start >= l.end {
		return nil
	}
	f, err := os.Open(in.path)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	l.f, l.pos = f, start
	if start > 0 {
		// The line straddling start belongs to the previous range: skip
		// through the first newline at or after start-1.
		if _, err := f.Seek(start-1, io.SeekStart); err != nil {
			return err
		}
	}
	l.r = bufio.NewReaderSize(f, 256<<10)
	if start > 0 {
		n, err := skipLine(l.r)
		l.pos = start - 1 + n
		if err == io.EOF {
			l.pos = l.end
		} else if err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
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
		if l.f == nil || l.pos >= l.end {
			if l.f != nil {
				l.f.Close()
				l.f = nil
			}
			if l.next >= len(l.files) {
				return sdk.Poll{Done: true}, nil
			}
			if err := l.open(); err != nil {
				return sdk.Poll{}, err
			}
			continue
		}
		line, err := l.r.ReadString('\n')
		if len(line) > 0 {
			l.pos += int64(len(line))
			line = strings.TrimSuffix(line, "\n")
			line = strings.TrimSuffix(line, "\r")
			emit(line)
		}
		if err == io.EOF {
			l.pos = l.end
		} else if err != nil {
			return sdk.Poll{}, fmt.Errorf("input: %w", err)
		}
	}
	return sdk.Poll{}, nil
}

func (l *lineReader) Close() error {
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
