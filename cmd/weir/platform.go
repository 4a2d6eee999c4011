package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"

	describepkg "github.com/weir-run/weir/internal/describe"
)

// platformEnv sets the default of `weir run --platform`.
const platformEnv = "WEIR_PLATFORM"

// parsePlatform splits "OS/ARCH", checking that weir can check it.
func parsePlatform(p string) (goos, goarch string, err error) {
	goos, goarch, ok := strings.Cut(p, "/")
	if !ok || goos == "" || goarch == "" {
		return "", "", usageErrorf("--platform must be OS/ARCH, e.g. linux/amd64, got %q", p)
	}
	if _, known := describepkg.ELFMachines[goarch]; !known && goos == "linux" {
		return "", "", usageErrorf("--platform %s: unknown architecture %q", p, goarch)
	}
	return goos, goarch, nil
}

// checkPlatform checks that the job binary at path runs on workers of
// platform: for linux, a statically linked ELF executable (no program
// interpreter, no shared libraries) for its architecture. Workers may run
// in images with no C library at all (deploy/image), so a binary built with
// cgo cannot start there. Other operating systems are not checked, nor is
// anything for platform "any" (workers that run whatever the submitter's
// machine runs, such as weir local). The error is one line, naming display
// and the build command that fixes it.
func checkPlatform(path, display, platform string) error {
	if platform == "any" {
		return nil
	}
	goos, goarch, err := parsePlatform(platform)
	if err != nil {
		return err
	}
	if goos != "linux" {
		return nil
	}
	hint := fmt.Sprintf("build it with CGO_ENABLED=0 GOOS=%s GOARCH=%s go build", goos, goarch)
	f, err := elf.Open(path)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s is not a Linux (ELF) executable, but the workers run %s; %s", display, platform, hint)
		}
		return fmt.Errorf("cannot read %s: %v", display, unwrapPathError(err))
	}
	defer f.Close()
	want := describepkg.ELFMachines[goarch]
	if f.Machine != want.Machine || f.Class != want.Class {
		return fmt.Errorf("%s is built for %s, but the workers run %s; %s", display, elfArch(f), platform, hint)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable (ELF type %v); %s", display, f.Type, hint)
	}
	var needs []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err == nil {
				needs = append(needs, strings.TrimRight(string(b), "\x00"))
			} else {
				needs = append(needs, "a program interpreter")
			}
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("cannot read %s's dynamic section: %v", display, err)
	}
	needs = append(needs, libs...)
	if len(needs) > 0 {
		return fmt.Errorf("%s is dynamically linked (needs %s), but workers run static binaries only (their image has no C library); %s",
			display, strings.Join(needs, ", "), hint)
	}
	return nil
}

// elfArch names f's architecture as GOARCH does, or as ELF does when it is
// none weir knows.
func elfArch(f *elf.File) string {
	if arch := describepkg.ELFArch(f.Machine, f.Class); arch != "" {
		return "linux/" + arch
	}
	return f.Machine.String()
}
