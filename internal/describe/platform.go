package describe

import (
	"debug/elf"
	"encoding/binary"
)

// ELFMachines maps the GOARCH values weir supports to their ELF machine and
// word size.
var ELFMachines = map[string]struct {
	Machine elf.Machine
	Class   elf.Class
}{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64},
	"386":     {elf.EM_386, elf.ELFCLASS32},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64},
	"ppc64le": {elf.EM_PPC64, elf.ELFCLASS64},
	"s390x":   {elf.EM_S390, elf.ELFCLASS64},
	"loong64": {elf.EM_LOONGARCH, elf.ELFCLASS64},
}

// ELFArch is the GOARCH of an ELF machine and class, or "" for one weir
// does not know.
func ELFArch(m elf.Machine, c elf.Class) string {
	for arch, w := range ELFMachines {
		if w.Machine == m && w.Class == c {
			return arch
		}
	}
	return ""
}

// HeaderLen is how many leading bytes of a file ELFPlatform needs.
const HeaderLen = 20

// ELFPlatform names the platform ("linux/amd64") of the Linux ELF file
// whose first bytes are head, or "" when they are no ELF header, one of
// another operating system (its OS ABI byte), or of a machine weir does
// not know.
func ELFPlatform(head []byte) string {
	if len(head) < HeaderLen || string(head[:4]) != elf.ELFMAG {
		return ""
	}
	if abi := elf.OSABI(head[elf.EI_OSABI]); abi != elf.ELFOSABI_NONE && abi != elf.ELFOSABI_LINUX {
		return ""
	}
	var order binary.ByteOrder
	switch elf.Data(head[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		order = binary.LittleEndian
	case elf.ELFDATA2MSB:
		order = binary.BigEndian
	default:
		return ""
	}
	arch := ELFArch(elf.Machine(order.Uint16(head[18:20])), elf.Class(head[elf.EI_CLASS]))
	if arch == "" {
		return ""
	}
	return "linux/" + arch
}
