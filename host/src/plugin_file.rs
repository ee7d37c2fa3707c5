//! Checking a plugin file before the dynamic loader sees it.
//!
//! `dlopen` maps a library's segments straight from the file; when the file
//! is shorter than its headers say (a truncated copy, an interrupted
//! download), touching the missing pages kills the process with SIGBUS
//! inside the loader, before any error can be returned. So the loader first
//! reads the headers itself: the file must be an ELF, Mach-O or PE shared
//! library, and every segment, section and load command its headers name
//! must lie inside the file. This is a sanity check on the file's shape,
//! not a security boundary: a file replaced between this check and
//! `dlopen` is not caught, and a well-formed library may still be no Bento
//! plugin (that is checked next, by symbol).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Why a file is refused. `NotALibrary` means "some other kind of file";
/// `Damaged` means "a library, but truncated or corrupt".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileProblem {
    /// Not a shared library at all (text, executable, another format).
    NotALibrary(String),
    /// A shared library whose headers point outside the file.
    Damaged(String),
}

/// Check that `path` is a complete ELF, Mach-O or PE shared library.
pub(crate) fn check_library_file(path: &Path) -> Result<(), FileProblem> {
    let mut file = File::open(path).map_err(|error| FileProblem::NotALibrary(format!("cannot open it ({error})")))?;
    let len =
        file.metadata().map_err(|error| FileProblem::NotALibrary(format!("cannot read its size ({error})")))?.len();
    let mut reader = FileReader { file: &mut file, len };
    let magic = reader.bytes(0, 4.min(len))?;
    match magic.as_slice() {
        [0x7f, b'E', b'L', b'F'] => check_elf(&mut reader),
        [b'M', b'Z', ..] => check_pe(&mut reader),
        [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => check_macho(&mut reader, 0, len),
        [0xca, 0xfe, 0xba, 0xbe] => check_fat_macho(&mut reader),
        _ => Err(FileProblem::NotALibrary("it is not a shared library (no ELF, Mach-O or PE header)".into())),
    }
}

/// Bounds-checked reads of a file whose length is known.
struct FileReader<'a> {
    file: &'a mut File,
    len: u64,
}

impl FileReader<'_> {
    /// `count` bytes at `offset`; a range past the end is damage.
    fn bytes(&mut self, offset: u64, count: u64) -> Result<Vec<u8>, FileProblem> {
        self.require(offset, count, "a header")?;
        let mut buffer = vec![0; usize::try_from(count).map_err(|_| damaged("a header is too large"))?];
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut buffer))
            .map_err(|error| FileProblem::NotALibrary(format!("cannot read it ({error})")))?;
        Ok(buffer)
    }

    /// `what` spans `count` bytes from `offset`: it must end inside the file.
    fn require(&self, offset: u64, count: u64, what: &str) -> Result<(), FileProblem> {
        match offset.checked_add(count) {
            Some(end) if end <= self.len => Ok(()),
            Some(end) => Err(damaged(&format!(
                "{what} ends at byte {end} but the file has only {} bytes (truncated copy?)",
                self.len
            ))),
            None => Err(damaged(&format!("{what} has an impossible offset"))),
        }
    }
}

fn damaged(reason: &str) -> FileProblem {
    FileProblem::Damaged(reason.to_string())
}

/// Little- or big-endian integer reads from a header buffer.
#[derive(Clone, Copy)]
struct Endian {
    big: bool,
}

impl Endian {
    fn u16(self, buffer: &[u8], at: usize) -> u64 {
        let bytes = [buffer[at], buffer[at + 1]];
        u64::from(if self.big { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
    }

    fn u32(self, buffer: &[u8], at: usize) -> u64 {
        let bytes = [buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]];
        u64::from(if self.big { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) })
    }

    fn u64(self, buffer: &[u8], at: usize) -> u64 {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&buffer[at..at + 8]);
        if self.big {
            u64::from_be_bytes(bytes)
        } else {
            u64::from_le_bytes(bytes)
        }
    }

    /// A 32- or 64-bit word.
    fn word(self, buffer: &[u8], at: usize, wide: bool) -> u64 {
        if wide {
            self.u64(buffer, at)
        } else {
            self.u32(buffer, at)
        }
    }
}

/// Most table entries a sane library has; more means a corrupt header (and
/// would make us read gigabytes of "headers").
const MAX_TABLE_ENTRIES: u64 = 1 << 16;

fn check_elf(reader: &mut FileReader<'_>) -> Result<(), FileProblem> {
    let ident = reader.bytes(0, 16)?;
    let wide = match ident[4] {
        1 => false,
        2 => true,
        class => return Err(damaged(&format!("unknown ELF class {class}"))),
    };
    let endian = match ident[5] {
        1 => Endian { big: false },
        2 => Endian { big: true },
        data => return Err(damaged(&format!("unknown ELF byte order {data}"))),
    };
    let header = reader.bytes(0, if wide { 64 } else { 52 })?;
    const ET_DYN: u64 = 3;
    if endian.u16(&header, 16) != ET_DYN {
        return Err(FileProblem::NotALibrary("it is an ELF file but not a shared library".into()));
    }
    let (ph_offset, sh_offset, fields) = if wide {
        (endian.u64(&header, 0x20), endian.u64(&header, 0x28), 0x36)
    } else {
        (endian.u32(&header, 0x1c), endian.u32(&header, 0x20), 0x2a)
    };
    let ph_entry_size = endian.u16(&header, fields);
    let ph_count = endian.u16(&header, fields + 2);
    let sh_entry_size = endian.u16(&header, fields + 4);
    let sh_count = endian.u16(&header, fields + 6);

    // Program headers: what the loader maps. Each segment's file bytes
    // must be in the file.
    let (min_ph, min_sh) = if wide { (56, 64) } else { (32, 40) };
    if ph_count == 0 {
        return Err(damaged("the ELF header lists no program headers"));
    }
    if ph_entry_size < min_ph {
        return Err(damaged("the ELF program header size is too small"));
    }
    let table = reader.bytes(ph_offset, ph_entry_size * ph_count)?;
    for index in 0..ph_count {
        let entry = &table[(index * ph_entry_size) as usize..];
        let (offset, file_size) = if wide {
            (endian.u64(entry, 8), endian.u64(entry, 32))
        } else {
            (endian.u32(entry, 4), endian.u32(entry, 16))
        };
        const PT_NULL: u64 = 0;
        if endian.u32(entry, 0) != PT_NULL {
            reader.require(offset, file_size, &format!("ELF segment {index}"))?;
        }
    }

    // Section headers: usually the last bytes of the file, so any
    // truncation shows here even when the segments happen to fit.
    if sh_offset != 0 {
        if sh_entry_size < min_sh {
            return Err(damaged("the ELF section header size is too small"));
        }
        let sh_count = if sh_count == 0 {
            // Extended numbering: the real count is section 0's size.
            let first = reader.bytes(sh_offset, sh_entry_size)?;
            endian.word(&first, if wide { 0x20 } else { 0x14 }, wide)
        } else {
            sh_count
        };
        if sh_count > MAX_TABLE_ENTRIES {
            return Err(damaged("the ELF header lists an impossible number of sections"));
        }
        let table = reader.bytes(sh_offset, sh_entry_size * sh_count)?;
        for index in 0..sh_count {
            let entry = &table[(index * sh_entry_size) as usize..];
            let kind = endian.u32(entry, 4);
            let (offset, size) = if wide {
                (endian.u64(entry, 0x18), endian.u64(entry, 0x20))
            } else {
                (endian.u32(entry, 0x10), endian.u32(entry, 0x14))
            };
            const SHT_NULL: u64 = 0;
            const SHT_NOBITS: u64 = 8;
            if kind != SHT_NULL && kind != SHT_NOBITS {
                reader.require(offset, size, &format!("ELF section {index}"))?;
            }
        }
    }
    Ok(())
}

fn check_fat_macho(reader: &mut FileReader<'_>) -> Result<(), FileProblem> {
    let endian = Endian { big: true };
    let header = reader.bytes(0, 8)?;
    let count = endian.u32(&header, 4);
    // Java class files share the 0xcafebabe magic; their "count" (the class
    // version, 45 and up) is above any real number of architectures.
    if count == 0 || count > 16 {
        return Err(FileProblem::NotALibrary("it is not a shared library (no ELF, Mach-O or PE header)".into()));
    }
    let table = reader.bytes(8, 20 * count)?;
    for index in 0..count {
        let entry = &table[(index * 20) as usize..];
        let (offset, size) = (endian.u32(entry, 8), endian.u32(entry, 12));
        reader.require(offset, size, &format!("Mach-O architecture {index}"))?;
        check_macho(reader, offset, size)?;
    }
    Ok(())
}

/// A thin Mach-O image of `size` bytes at `base`.
fn check_macho(reader: &mut FileReader<'_>, base: u64, size: u64) -> Result<(), FileProblem> {
    let magic = reader.bytes(base, 4)?;
    let (wide, endian) = match magic.as_slice() {
        [0xfe, 0xed, 0xfa, 0xce] => (false, Endian { big: true }),
        [0xfe, 0xed, 0xfa, 0xcf] => (true, Endian { big: true }),
        [0xce, 0xfa, 0xed, 0xfe] => (false, Endian { big: false }),
        [0xcf, 0xfa, 0xed, 0xfe] => (true, Endian { big: false }),
        _ => return Err(damaged("a Mach-O architecture has no Mach-O header")),
    };
    let header_size = if wide { 32 } else { 28 };
    let header = reader.bytes(base, header_size)?;
    const MH_DYLIB: u64 = 6;
    const MH_BUNDLE: u64 = 8;
    if !matches!(endian.u32(&header, 12), MH_DYLIB | MH_BUNDLE) {
        return Err(FileProblem::NotALibrary("it is a Mach-O file but not a dynamic library".into()));
    }
    let command_count = endian.u32(&header, 16);
    let commands_size = endian.u32(&header, 20);
    if command_count > MAX_TABLE_ENTRIES {
        return Err(damaged("the Mach-O header lists an impossible number of load commands"));
    }
    let commands = reader.bytes(base + header_size, commands_size)?;
    let mut at = 0usize;
    for index in 0..command_count {
        if at + 8 > commands.len() {
            return Err(damaged(&format!("Mach-O load command {index} lies outside the command area")));
        }
        let command = endian.u32(&commands, at);
        let command_size = endian.u32(&commands, at + 4) as usize;
        if command_size < 8 || at + command_size > commands.len() {
            return Err(damaged(&format!("Mach-O load command {index} has a bad size")));
        }
        const LC_SEGMENT: u64 = 0x1;
        const LC_SEGMENT_64: u64 = 0x19;
        let segment = match command {
            LC_SEGMENT if command_size >= 40 => Some((endian.u32(&commands, at + 32), endian.u32(&commands, at + 36))),
            LC_SEGMENT_64 if command_size >= 56 => {
                Some((endian.u64(&commands, at + 40), endian.u64(&commands, at + 48)))
            }
            _ => None,
        };
        if let Some((offset, file_size)) = segment {
            if offset.checked_add(file_size).is_none_or(|end| end > size) {
                return Err(damaged(&format!(
                    "Mach-O segment {index} ends past the {size} bytes of its image (truncated copy?)"
                )));
            }
        }
        at += command_size;
    }
    Ok(())
}

fn check_pe(reader: &mut FileReader<'_>) -> Result<(), FileProblem> {
    let endian = Endian { big: false };
    let dos = reader.bytes(0, 0x40).map_err(|_| damaged("the DOS header is cut short"))?;
    let pe_offset = endian.u32(&dos, 0x3c);
    let signature = reader.bytes(pe_offset, 4 + 20)?;
    if &signature[..4] != b"PE\0\0" {
        return Err(FileProblem::NotALibrary("it has a DOS header but no PE header".into()));
    }
    let coff = &signature[4..];
    let section_count = endian.u16(coff, 2);
    let optional_header_size = endian.u16(coff, 16);
    const IMAGE_FILE_DLL: u64 = 0x2000;
    if endian.u16(coff, 18) & IMAGE_FILE_DLL == 0 {
        return Err(FileProblem::NotALibrary("it is a PE file but not a DLL".into()));
    }
    let table = reader.bytes(pe_offset + 24 + optional_header_size, 40 * section_count)?;
    for index in 0..section_count {
        let entry = &table[(index * 40) as usize..];
        let (raw_size, raw_offset) = (endian.u32(entry, 16), endian.u32(entry, 20));
        if raw_size > 0 {
            reader.require(raw_offset, raw_size, &format!("PE section {index}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn check_bytes(bytes: &[u8]) -> Result<(), FileProblem> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(bytes).expect("write");
        check_library_file(file.path())
    }

    /// This test binary's own shared libraries are complete ELF files.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_system_library_passes_and_its_truncations_do_not() {
        let candidates = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6"];
        let Some(library) = candidates.iter().map(Path::new).find(|path| path.exists()) else { return };
        let bytes = std::fs::read(library).expect("libc is readable");
        assert_eq!(check_bytes(&bytes), Ok(()));
        for cut in [16, 64, 4096, bytes.len() / 2, bytes.len() - 1] {
            let problem = check_bytes(&bytes[..cut]).expect_err("a truncated library is refused");
            assert!(matches!(problem, FileProblem::Damaged(_)), "cut at {cut}: {problem:?}");
        }
    }

    #[test]
    fn other_files_are_not_libraries() {
        for bytes in [&b"hello, world"[..], b"", b"\x7fEL", b"\xca\xfe\xba\xbe\x00\x00\x00\x34rest of a class file"] {
            assert!(matches!(check_bytes(bytes), Err(FileProblem::NotALibrary(_))), "{bytes:?}");
        }
    }

    #[test]
    fn a_pe_header_pointing_past_the_end_is_damaged() {
        let mut bytes = vec![0u8; 0x40];
        bytes[..2].copy_from_slice(b"MZ");
        bytes[0x3c..0x40].copy_from_slice(&0x1000u32.to_le_bytes());
        assert!(matches!(check_bytes(&bytes), Err(FileProblem::Damaged(_))));
    }

    #[test]
    fn a_macho_dylib_whose_segment_is_cut_is_damaged() {
        // 64-bit little-endian Mach-O dylib with one LC_SEGMENT_64 whose
        // file bytes extend past the image.
        let mut bytes = Vec::new();
        for word in [0xfeedfacfu32, 0x0100000c, 0, 6, 1, 72, 0, 0] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        let mut segment = vec![0u8; 72];
        segment[..4].copy_from_slice(&0x19u32.to_le_bytes());
        segment[4..8].copy_from_slice(&72u32.to_le_bytes());
        segment[40..48].copy_from_slice(&0u64.to_le_bytes());
        segment[48..56].copy_from_slice(&100_000u64.to_le_bytes());
        bytes.extend_from_slice(&segment);
        assert!(matches!(check_bytes(&bytes), Err(FileProblem::Damaged(_))), "{:?}", check_bytes(&bytes));
        // The same header with a segment that fits passes.
        let fits = bytes.len() as u64;
        bytes[32 + 48..32 + 56].copy_from_slice(&fits.to_le_bytes());
        assert_eq!(check_bytes(&bytes), Ok(()));
    }
}
