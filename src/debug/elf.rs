//! A small in-memory ELF object describing one module's compiled code for
//! debuggers (the GDB JIT interface, [`super::gdb`]): symbols, call-frame
//! information and a DWARF line table pointing at the `.kir` file.
//!
//! Written by hand rather than with the `object` and `gimli` crates: the
//! object has a fixed shape (nine sections, one compile unit), which takes
//! a few hundred lines, while those crates would add two dependencies (and
//! their own) to every embedder for this one use. The layout follows
//! LuaJIT's GDB JIT objects:
//!
//! | section | contents |
//! |---|---|
//! | `.text` | `SHT_NOBITS` at the module's code address (the code itself stays in the process) |
//! | `.symtab`, `.strtab` | a `STT_FILE` symbol, then one `STT_FUNC` per function (section-relative values) |
//! | `.debug_frame` | the CFI of [`super::unwind`] in `.debug_frame` form |
//! | `.debug_abbrev`, `.debug_info` | one DWARF 4 compile unit (the `.kir` file) with a subprogram per function |
//! | `.debug_line` | the line table: one sequence per function, a row per line-table entry (line and column) |
//!
//! The object is `ET_REL` for the module's ISA (`EM_X86_64` or
//! `EM_AARCH64`); every address in it (section addresses, DWARF `low_pc`,
//! line-table addresses, FDE ranges) is the final target address, so a
//! debugger needs no relocation.

use super::lines::{write_sleb, write_uleb, LineTable};
use super::unwind::{self, UnwindFunc, UnwindIsa};

/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of AArch64.
pub const EM_AARCH64: u16 = 183;

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_NOBITS: u32 = 8;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;

/// One function of the object.
pub struct ObjectFunc<'a> {
    pub name: &'a str,
    pub address: u64,
    /// Its code (for the CFI; not copied into the object).
    pub code: &'a [u8],
    pub lines: &'a LineTable,
    /// The line of the function's `@name` token.
    pub line: u32,
}

/// What the object describes.
pub struct ObjectInfo<'a> {
    pub isa: UnwindIsa,
    /// The source file, as the debugger should open it.
    pub file: &'a str,
    /// The directory relative file names are relative to.
    pub comp_dir: &'a str,
    /// The module's text: address and size.
    pub text_address: u64,
    pub text_size: u64,
    pub funcs: &'a [ObjectFunc<'a>],
}

/// A string table under construction.
struct StrTab(Vec<u8>);

impl StrTab {
    fn new() -> StrTab {
        StrTab(vec![0])
    }
    fn add(&mut self, s: &str) -> u32 {
        let at = self.0.len() as u32;
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        at
    }
}

/// Appends a NUL-terminated string.
fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u64le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

const DW_TAG_COMPILE_UNIT: u8 = 0x11;
const DW_TAG_SUBPROGRAM: u8 = 0x2e;
const DW_AT_NAME: u8 = 0x03;
const DW_AT_STMT_LIST: u8 = 0x10;
const DW_AT_LOW_PC: u8 = 0x11;
const DW_AT_HIGH_PC: u8 = 0x12;
const DW_AT_LANGUAGE: u8 = 0x13;
const DW_AT_COMP_DIR: u8 = 0x1b;
const DW_AT_PRODUCER: u8 = 0x25;
const DW_AT_DECL_FILE: u8 = 0x3a;
const DW_AT_DECL_LINE: u8 = 0x3b;
const DW_AT_EXTERNAL: u8 = 0x3f;
const DW_FORM_ADDR: u8 = 0x01;
const DW_FORM_DATA2: u8 = 0x05;
const DW_FORM_DATA4: u8 = 0x06;
const DW_FORM_DATA8: u8 = 0x07;
const DW_FORM_STRING: u8 = 0x08;
const DW_FORM_DATA1: u8 = 0x0b;
const DW_FORM_SEC_OFFSET: u8 = 0x17;
const DW_FORM_FLAG_PRESENT: u8 = 0x19;
/// The source language: C (debuggers show C-style frames).
const DW_LANG_C99: u16 = 0x000c;

fn abbrev() -> Vec<u8> {
    let mut b = Vec::new();
    // 1: the compile unit, with children.
    b.extend([1, DW_TAG_COMPILE_UNIT, 1]);
    for (at, form) in [
        (DW_AT_PRODUCER, DW_FORM_STRING),
        (DW_AT_LANGUAGE, DW_FORM_DATA2),
        (DW_AT_NAME, DW_FORM_STRING),
        (DW_AT_COMP_DIR, DW_FORM_STRING),
        (DW_AT_LOW_PC, DW_FORM_ADDR),
        (DW_AT_HIGH_PC, DW_FORM_DATA8),
        (DW_AT_STMT_LIST, DW_FORM_SEC_OFFSET),
    ] {
        b.extend([at, form]);
    }
    b.extend([0, 0]);
    // 2: a function, no children.
    b.extend([2, DW_TAG_SUBPROGRAM, 0]);
    for (at, form) in [
        (DW_AT_NAME, DW_FORM_STRING),
        (DW_AT_EXTERNAL, DW_FORM_FLAG_PRESENT),
        (DW_AT_LOW_PC, DW_FORM_ADDR),
        (DW_AT_HIGH_PC, DW_FORM_DATA8),
        (DW_AT_DECL_FILE, DW_FORM_DATA1),
        (DW_AT_DECL_LINE, DW_FORM_DATA4),
    ] {
        b.extend([at, form]);
    }
    b.extend([0, 0]);
    b.push(0);
    b
}

fn debug_info(info: &ObjectInfo<'_>) -> Vec<u8> {
    let mut d = Vec::new();
    u16le(&mut d, 4); // version
    u32le(&mut d, 0); // abbrev offset
    d.push(8); // address size
    d.push(1);
    cstr(&mut d, concat!("kiln ", env!("CARGO_PKG_VERSION")));
    u16le(&mut d, DW_LANG_C99);
    cstr(&mut d, info.file);
    cstr(&mut d, info.comp_dir);
    u64le(&mut d, info.text_address);
    u64le(&mut d, info.text_size);
    u32le(&mut d, 0); // stmt_list: the line program at offset 0
    for f in info.funcs {
        d.push(2);
        cstr(&mut d, f.name);
        u64le(&mut d, f.address);
        u64le(&mut d, f.code.len() as u64);
        d.push(1);
        u32le(&mut d, f.line);
    }
    d.push(0); // end of the unit's children
    let mut out = Vec::with_capacity(d.len() + 4);
    u32le(&mut out, d.len() as u32);
    out.extend_from_slice(&d);
    out
}

const DW_LNS_COPY: u8 = 1;
const DW_LNS_ADVANCE_PC: u8 = 2;
const DW_LNS_ADVANCE_LINE: u8 = 3;
const DW_LNS_SET_COLUMN: u8 = 5;
const DW_LNE_END_SEQUENCE: u8 = 1;
const DW_LNE_SET_ADDRESS: u8 = 2;

fn debug_line(info: &ObjectInfo<'_>) -> Vec<u8> {
    // Header after `header_length`.
    let mut h = vec![
        1,          // minimum_instruction_length
        1,          // maximum_operations_per_instruction
        1,          // default_is_stmt
        -5i8 as u8, // line_base
        14,         // line_range
        13,         // opcode_base
    ];
    h.extend([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 1]); // standard opcode lengths
    h.push(0); // no include directories
    cstr(&mut h, info.file); // file 1
    h.extend([0, 0, 0]); // directory, mtime, length
    h.push(0); // end of files
               // The program: a sequence per function.
    let mut p = Vec::new();
    for f in info.funcs {
        p.extend([0, 9, DW_LNE_SET_ADDRESS]);
        u64le(&mut p, f.address);
        let (mut line, mut offset) = (1i64, 0u64);
        for (o, loc) in f.lines.iter() {
            if loc.line == 0 {
                continue;
            }
            if o as u64 > offset {
                p.push(DW_LNS_ADVANCE_PC);
                write_uleb(&mut p, o as u64 - offset);
                offset = o as u64;
            }
            if loc.line as i64 != line {
                p.push(DW_LNS_ADVANCE_LINE);
                write_sleb(&mut p, loc.line as i64 - line);
                line = loc.line as i64;
            }
            p.push(DW_LNS_SET_COLUMN);
            write_uleb(&mut p, loc.col as u64);
            p.push(DW_LNS_COPY);
        }
        let size = f.code.len() as u64;
        if size > offset {
            p.push(DW_LNS_ADVANCE_PC);
            write_uleb(&mut p, size - offset);
        }
        p.extend([0, 1, DW_LNE_END_SEQUENCE]);
    }
    let mut out = Vec::new();
    let unit_length = 2 + 4 + h.len() + p.len();
    u32le(&mut out, unit_length as u32);
    u16le(&mut out, 4); // version
    u32le(&mut out, h.len() as u32);
    out.extend_from_slice(&h);
    out.extend_from_slice(&p);
    out
}

/// One section header's fields.
struct Section {
    name: u32,
    kind: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
}

/// The ELF object for `info`.
pub fn object(info: &ObjectInfo<'_>) -> Vec<u8> {
    let mut shstr = StrTab::new();
    let mut strtab = StrTab::new();
    // Symbols: null, the file, each function.
    let mut symtab = vec![0u8; 24];
    let file_name = strtab.add(info.file);
    sym(&mut symtab, file_name, 0x04, 0xfff1, 0, 0); // STT_FILE, LOCAL, SHN_ABS
    for f in info.funcs {
        let n = strtab.add(f.name);
        let value = f.address.wrapping_sub(info.text_address);
        sym(&mut symtab, n, 0x12, 1, value, f.code.len() as u64); // GLOBAL FUNC in .text
    }
    let frames: Vec<UnwindFunc<'_>> = info
        .funcs
        .iter()
        .map(|f| UnwindFunc {
            address: f.address,
            code: f.code,
        })
        .collect();
    let contents: [(&str, u32, Vec<u8>); 7] = [
        (".symtab", SHT_SYMTAB, symtab),
        (".strtab", SHT_STRTAB, strtab.0),
        (
            ".debug_frame",
            SHT_PROGBITS,
            unwind::debug_frame(info.isa, &frames),
        ),
        (".debug_abbrev", SHT_PROGBITS, abbrev()),
        (".debug_info", SHT_PROGBITS, debug_info(info)),
        (".debug_line", SHT_PROGBITS, debug_line(info)),
        (".shstrtab", SHT_STRTAB, Vec::new()),
    ];
    let mut sections = vec![
        Section {
            name: 0,
            kind: 0,
            flags: 0,
            addr: 0,
            offset: 0,
            size: 0,
            link: 0,
            info: 0,
            align: 0,
            entsize: 0,
        },
        Section {
            name: shstr.add(".text"),
            kind: SHT_NOBITS,
            flags: SHF_ALLOC | SHF_EXECINSTR,
            addr: info.text_address,
            offset: 64,
            size: info.text_size,
            link: 0,
            info: 0,
            align: 16,
            entsize: 0,
        },
    ];
    let names: Vec<u32> = contents.iter().map(|c| shstr.add(c.0)).collect();
    let mut body = Vec::new();
    let count = contents.len();
    for (i, (name, kind, mut bytes)) in contents.into_iter().enumerate() {
        if i + 1 == count {
            bytes = std::mem::take(&mut shstr.0);
        }
        while body.len() % 8 != 0 {
            body.push(0);
        }
        let (link, info_field, entsize, align) = match name {
            // .strtab is section 3; the first non-local symbol is 2.
            ".symtab" => (3, 2, 24, 8),
            _ => (0, 0, 0, 1),
        };
        sections.push(Section {
            name: names[i],
            kind,
            flags: 0,
            addr: 0,
            offset: 64 + body.len() as u64,
            size: bytes.len() as u64,
            link,
            info: info_field,
            align,
            entsize,
        });
        body.extend_from_slice(&bytes);
    }
    while body.len() % 8 != 0 {
        body.push(0);
    }
    let shoff = 64 + body.len() as u64;
    let mut out = Vec::with_capacity(shoff as usize + 64 * sections.len());
    // ELF header.
    out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    out.extend_from_slice(&[0; 8]);
    u16le(&mut out, 1); // ET_REL
    u16le(
        &mut out,
        match info.isa {
            UnwindIsa::X86_64 => EM_X86_64,
            UnwindIsa::Aarch64 => EM_AARCH64,
        },
    );
    u32le(&mut out, 1); // EV_CURRENT
    u64le(&mut out, 0); // entry
    u64le(&mut out, 0); // phoff
    u64le(&mut out, shoff);
    u32le(&mut out, 0); // flags
    u16le(&mut out, 64); // ehsize
    u16le(&mut out, 0); // phentsize
    u16le(&mut out, 0); // phnum
    u16le(&mut out, 64); // shentsize
    u16le(&mut out, sections.len() as u16);
    u16le(&mut out, sections.len() as u16 - 1); // shstrndx: the last
    out.extend_from_slice(&body);
    for s in &sections {
        u32le(&mut out, s.name);
        u32le(&mut out, s.kind);
        u64le(&mut out, s.flags);
        u64le(&mut out, s.addr);
        u64le(&mut out, s.offset);
        u64le(&mut out, s.size);
        u32le(&mut out, s.link);
        u32le(&mut out, s.info);
        u64le(&mut out, s.align);
        u64le(&mut out, s.entsize);
    }
    out
}

/// Appends one `Elf64_Sym`.
fn sym(out: &mut Vec<u8>, name: u32, info: u8, shndx: u16, value: u64, size: u64) {
    u32le(out, name);
    out.push(info);
    out.push(0); // other: default visibility
    u16le(out, shndx);
    u64le(out, value);
    u64le(out, size);
}
