//! Where the running executable's read-only segments are, in memory and in the file.
//!
//! The program headers (read from the executable itself) give each loadable segment's
//! virtual address and file offset; the auxiliary vector's `AT_PHDR` (from
//! `/proc/self/auxv`) gives where the headers were loaded, hence the load bias of a
//! position-independent executable. Only segments the loader maps read-only from the
//! file qualify: a writable segment (and RELRO, which is written by relocation before
//! it is made read-only) no longer matches the file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// A run of memory that is byte for byte the executable's file from `file_offset` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
    pub file_offset: u64,
}

const PT_LOAD: u32 = 1;
const PT_PHDR: u32 = 6;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const PF_W: u32 = 2;
pub const AT_PHDR: u64 = 3;
pub const AT_PAGESZ: u64 = 6;
/// Bounds for headers read from a file that might be anything.
const MAX_PHNUM: usize = 256;

/// One program header, the fields used here.
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

/// The read-only, file-backed segments of the executable `exe` as it is mapped in this
/// process, given the runtime address of its program headers (`AT_PHDR`).
pub fn read_only_segments(exe: &File, phdr_addr: u64) -> io::Result<Vec<Segment>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let mut ident = [0u8; 64];
    exe.read_exact_at(&mut ident, 0)?;
    if &ident[..4] != b"\x7fELF" {
        return Err(invalid("not an ELF file"));
    }
    // 64-bit, in this machine's byte order: the only kind servy is built as on Linux.
    let native = if cfg!(target_endian = "little") { 1 } else { 2 };
    if ident[4] != 2 || ident[5] != native {
        return Err(invalid("not a 64-bit native-endian ELF file"));
    }
    let phoff = u64_at(&ident, 0x20);
    let phentsize = usize::from(u16_at(&ident, 0x36));
    let phnum = usize::from(u16_at(&ident, 0x38));
    if phentsize < 56 || phnum == 0 || phnum > MAX_PHNUM {
        return Err(invalid("implausible program header table"));
    }
    let mut table = vec![0u8; phentsize * phnum];
    exe.read_exact_at(&mut table, phoff)?;
    let headers: Vec<ProgramHeader> = table
        .chunks_exact(phentsize)
        .map(|h| ProgramHeader {
            kind: u32_at(h, 0),
            flags: u32_at(h, 4),
            offset: u64_at(h, 8),
            vaddr: u64_at(h, 16),
            filesz: u64_at(h, 32),
            memsz: u64_at(h, 40),
        })
        .collect();

    // Where the table itself sits in the address space the headers describe.
    let phdr_vaddr = headers
        .iter()
        .find(|h| h.kind == PT_PHDR)
        .map(|h| h.vaddr)
        .or_else(|| {
            headers
                .iter()
                .find(|h| h.kind == PT_LOAD && h.offset <= phoff && phoff - h.offset < h.filesz)
                .map(|h| h.vaddr + (phoff - h.offset))
        })
        .ok_or_else(|| invalid("program headers are not in a loaded segment"))?;
    let bias = phdr_addr.wrapping_sub(phdr_vaddr);

    let relro: Vec<(u64, u64)> = headers
        .iter()
        .filter(|h| h.kind == PT_GNU_RELRO)
        .map(|h| (h.vaddr, h.vaddr.saturating_add(h.memsz)))
        .collect();
    let mut segments = Vec::new();
    for h in headers
        .iter()
        .filter(|h| h.kind == PT_LOAD && h.flags & PF_W == 0)
    {
        let (lo, hi) = (h.vaddr, h.vaddr.saturating_add(h.filesz));
        if h.filesz == 0 || relro.iter().any(|&(a, b)| a < hi && lo < b) {
            continue;
        }
        let start = bias.wrapping_add(lo);
        let end = start
            .checked_add(h.filesz)
            .ok_or_else(|| invalid("segment wraps the address space"))?;
        let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end)) else {
            return Err(invalid("segment outside the address space"));
        };
        segments.push(Segment {
            start,
            end,
            file_offset: h.offset,
        });
    }
    Ok(segments)
}

/// One entry (`AT_PHDR`, `AT_PAGESZ`) of an auxiliary vector as `/proc/self/auxv`
/// presents it: native-endian (type, value) pairs of machine words, ending with type 0.
pub fn auxv_entry(auxv: &[u8], wanted: u64) -> Option<u64> {
    auxv.chunks_exact(16)
        .map(|pair| (u64_at(pair, 0), u64_at(pair, 8)))
        .take_while(|&(kind, _)| kind != 0)
        .find(|&(kind, _)| kind == wanted)
        .map(|(_, value)| value)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auxv_pairs_end_at_the_null_entry() {
        let mut auxv = Vec::new();
        for (k, v) in [
            (6u64, 4096u64),
            (AT_PHDR, 0x5555_0040),
            (0, 0),
            (AT_PHDR, 1),
        ] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(auxv_entry(&auxv, AT_PHDR), Some(0x5555_0040));
        assert_eq!(auxv_entry(&auxv, AT_PAGESZ), Some(4096));
        assert_eq!(auxv_entry(&auxv[..16], AT_PHDR), None);
        assert_eq!(
            auxv_entry(&auxv, 9),
            None,
            "entries after the end do not count"
        );
    }

    #[test]
    fn this_test_binary_has_a_read_only_segment_holding_its_constants() {
        static MARKER: [u8; 32] = *b"servy zero-copy segment marker!!";
        let exe = File::open("/proc/self/exe").expect("open /proc/self/exe");
        let auxv = std::fs::read("/proc/self/auxv").expect("read auxv");
        let phdr = auxv_entry(&auxv, AT_PHDR).expect("AT_PHDR");
        let segments = read_only_segments(&exe, phdr).expect("segments");
        let addr = MARKER.as_ptr() as usize;
        let s = segments
            .iter()
            .find(|s| s.start <= addr && addr + MARKER.len() <= s.end)
            .expect("a static constant lies in a read-only segment");
        let mut from_file = [0u8; 32];
        exe.read_exact_at(&mut from_file, s.file_offset + (addr - s.start) as u64)
            .expect("read");
        assert_eq!(from_file, MARKER);
    }
}
