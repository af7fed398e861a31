//! The wire format between kiln and its executor child: small binary
//! messages over one `AF_UNIX` stream socket, little-endian throughout.
//!
//! Every message is a frame: `u32 length` (of what follows), then a `u8`
//! tag and the tag's fields. The child speaks first with [`Reply::Hello`]
//! (magic `KILNEXEC` and [`VERSION`]); a parent refuses any other version.
//! Requests are answered in order, one reply each, except
//! [`Request::Interrupt`], which has no reply and may arrive while a call
//! runs.
//!
//! | tag | request | fields | reply |
//! |---|---|---|---|
//! | 1 | `Allocate` | kind u8, len u64, align u64 | `Address` |
//! | 2 | `AllocateAt` | kind u8, address u64, len u64 | `Ok` |
//! | 3 | `Write` | address u64, bytes (the rest) | `Ok` |
//! | 4 | `Finalize` | count u32, then kind u8, address u64, len u64 each | `Ok` |
//! | 5 | `Release` | kind u8, address u64, len u64 | `Ok` |
//! | 6 | `Call` | address u64, interrupted u8, ret type u8, count u8, then type u8 and bits u64 per argument | `Returned` or `Trap` |
//! | 7 | `Lookup` | name (the rest, UTF-8) | `Address` or `NotFound` |
//! | 8 | `Interrupt` | — | none |
//!
//! Replies: 0x80 `Ok`; 0x81 `Address` u64; 0x82 `NotFound`; 0x83
//! `Returned` (has u8, bits u64); 0x84 `Trap` (code u32, then the code
//! addresses of its backtrace, u64 each, innermost first); 0x85 `Error`
//! (message, the rest); 0x86 `Hello` (magic 8 bytes, version u32, region
//! base u64). Any request may be answered with `Error`.
//!
//! Types are `i32` 0, `i64` 1, `f32` 2, `f64` 3, none 0xff.

use crate::error::{Error, Result};
use crate::ir::Type;
use crate::memory::SectionKind;
use std::io::{Read, Write};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The first bytes of the child's hello.
pub const MAGIC: &[u8; 8] = b"KILNEXEC";

/// The largest frame either side accepts (a section of up to 1 GiB).
pub const MAX_FRAME: u32 = 1 << 30;

/// One section as sent: kind, address, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub kind: SectionKind,
    pub address: u64,
    pub len: u64,
}

/// What the parent asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Allocate {
        kind: SectionKind,
        len: u64,
        align: u64,
    },
    AllocateAt(Span),
    Write {
        address: u64,
        bytes: Vec<u8>,
    },
    Finalize(Vec<Span>),
    Release(Span),
    /// `interrupted`: whether an interrupt is already pending when the
    /// call starts.
    Call {
        address: u64,
        interrupted: bool,
        ret: Option<Type>,
        args: Vec<(Type, u64)>,
    },
    Lookup(String),
    Interrupt,
}

/// What the child answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Ok,
    Address(u64),
    NotFound,
    Returned(Option<u64>),
    /// The trap code and the code addresses the child captured (for the
    /// parent's IR-level backtrace).
    Trap(u32, Vec<u64>),
    Error(String),
    Hello {
        version: u32,
        region: u64,
    },
}

fn kind_code(k: SectionKind) -> u8 {
    match k {
        SectionKind::Text => 0,
        SectionKind::Rodata => 1,
        SectionKind::Data => 2,
    }
}

fn kind_of(c: u8) -> Result<SectionKind> {
    match c {
        0 => Ok(SectionKind::Text),
        1 => Ok(SectionKind::Rodata),
        2 => Ok(SectionKind::Data),
        _ => Err(bad("section kind")),
    }
}

fn type_code(t: Option<Type>) -> u8 {
    match t {
        Some(Type::I32) => 0,
        Some(Type::I64) => 1,
        Some(Type::F32) => 2,
        Some(Type::F64) => 3,
        None => 0xff,
    }
}

fn type_of(c: u8) -> Result<Option<Type>> {
    match c {
        0 => Ok(Some(Type::I32)),
        1 => Ok(Some(Type::I64)),
        2 => Ok(Some(Type::F32)),
        3 => Ok(Some(Type::F64)),
        0xff => Ok(None),
        _ => Err(bad("type")),
    }
}

fn bad(what: &str) -> Error {
    Error::Runtime(format!("executor protocol: malformed {what}"))
}

/// Appends fields to a frame under construction.
struct Out(Vec<u8>);

impl Out {
    fn new(tag: u8) -> Out {
        Out(vec![0, 0, 0, 0, tag])
    }
    fn u8(mut self, v: u8) -> Out {
        self.0.push(v);
        self
    }
    fn u32(mut self, v: u32) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, b: &[u8]) -> Out {
        self.0.extend_from_slice(b);
        self
    }
    fn span(self, s: Span) -> Out {
        self.u8(kind_code(s.kind)).u64(s.address).u64(s.len)
    }
    /// The finished frame, length filled in.
    fn done(mut self) -> Vec<u8> {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

/// Reads fields of a received frame.
struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(bad("frame (too short)"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0).to_vec()
    }
    fn span(&mut self) -> Result<Span> {
        Ok(Span {
            kind: kind_of(self.u8()?)?,
            address: self.u64()?,
            len: self.u64()?,
        })
    }
    fn end(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad("frame (trailing bytes)"))
        }
    }
}

impl Request {
    /// The frame of this request.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Allocate { kind, len, align } => {
                Out::new(1).u8(kind_code(*kind)).u64(*len).u64(*align)
            }
            Request::AllocateAt(s) => Out::new(2).span(*s),
            Request::Write { address, bytes } => Out::new(3).u64(*address).bytes(bytes),
            Request::Finalize(spans) => spans
                .iter()
                .fold(Out::new(4).u32(spans.len() as u32), |o, s| o.span(*s)),
            Request::Release(s) => Out::new(5).span(*s),
            Request::Call {
                address,
                interrupted,
                ret,
                args,
            } => args.iter().fold(
                Out::new(6)
                    .u64(*address)
                    .u8(u8::from(*interrupted))
                    .u8(type_code(*ret))
                    .u8(args.len() as u8),
                |o, &(t, bits)| o.u8(type_code(Some(t))).u64(bits),
            ),
            Request::Lookup(name) => Out::new(7).bytes(name.as_bytes()),
            Request::Interrupt => Out::new(8),
        }
        .done()
    }

    /// Decodes a frame's body (tag and fields).
    pub fn decode(body: &[u8]) -> Result<Request> {
        let mut r = In(body);
        let req = match r.u8()? {
            1 => Request::Allocate {
                kind: kind_of(r.u8()?)?,
                len: r.u64()?,
                align: r.u64()?,
            },
            2 => Request::AllocateAt(r.span()?),
            3 => Request::Write {
                address: r.u64()?,
                bytes: r.rest(),
            },
            4 => {
                let n = r.u32()?;
                let mut spans = Vec::with_capacity((n as usize).min(1024));
                for _ in 0..n {
                    spans.push(r.span()?);
                }
                Request::Finalize(spans)
            }
            5 => Request::Release(r.span()?),
            6 => {
                let address = r.u64()?;
                let interrupted = r.u8()? != 0;
                let ret = type_of(r.u8()?)?;
                let n = r.u8()?;
                let mut args = Vec::with_capacity(n.into());
                for _ in 0..n {
                    let t = type_of(r.u8()?)?.ok_or_else(|| bad("argument type"))?;
                    args.push((t, r.u64()?));
                }
                Request::Call {
                    address,
                    interrupted,
                    ret,
                    args,
                }
            }
            7 => Request::Lookup(String::from_utf8(r.rest()).map_err(|_| bad("symbol name"))?),
            8 => Request::Interrupt,
            _ => return Err(bad("request tag")),
        };
        r.end()?;
        Ok(req)
    }
}

impl Reply {
    /// The frame of this reply.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Reply::Ok => Out::new(0x80),
            Reply::Address(a) => Out::new(0x81).u64(*a),
            Reply::NotFound => Out::new(0x82),
            Reply::Returned(v) => Out::new(0x83).u8(u8::from(v.is_some())).u64(v.unwrap_or(0)),
            Reply::Trap(code, pcs) => pcs.iter().fold(Out::new(0x84).u32(*code), |o, &p| o.u64(p)),
            Reply::Error(m) => Out::new(0x85).bytes(m.as_bytes()),
            Reply::Hello { version, region } => {
                Out::new(0x86).bytes(MAGIC).u32(*version).u64(*region)
            }
        }
        .done()
    }

    /// Decodes a frame's body.
    pub fn decode(body: &[u8]) -> Result<Reply> {
        let mut r = In(body);
        let reply = match r.u8()? {
            0x80 => Reply::Ok,
            0x81 => Reply::Address(r.u64()?),
            0x82 => Reply::NotFound,
            0x83 => {
                let has = r.u8()? != 0;
                let bits = r.u64()?;
                Reply::Returned(has.then_some(bits))
            }
            0x84 => {
                let code = r.u32()?;
                let mut pcs = Vec::new();
                while !r.0.is_empty() {
                    pcs.push(r.u64()?);
                }
                Reply::Trap(code, pcs)
            }
            0x85 => Reply::Error(String::from_utf8_lossy(&r.rest()).into_owned()),
            0x86 => {
                if r.take(8)? != MAGIC {
                    return Err(bad("hello (not a kiln executor)"));
                }
                Reply::Hello {
                    version: r.u32()?,
                    region: r.u64()?,
                }
            }
            _ => return Err(bad("reply tag")),
        };
        r.end()?;
        Ok(reply)
    }
}

/// Reads one frame's body; `Ok(None)` at a clean end of stream (the other
/// side closed, or died, between frames).
pub fn read_frame(from: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match from.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(len);
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("executor frame of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    from.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Writes one encoded frame.
pub fn write_frame(to: &mut impl Write, frame: &[u8]) -> std::io::Result<()> {
    to.write_all(frame)?;
    to.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &[u8]) -> &[u8] {
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn every_message_round_trips() {
        let span = Span {
            kind: SectionKind::Rodata,
            address: 0x1234_5678_9abc,
            len: 77,
        };
        for req in [
            Request::Allocate {
                kind: SectionKind::Text,
                len: 100,
                align: 16,
            },
            Request::AllocateAt(span),
            Request::Write {
                address: 9,
                bytes: vec![1, 2, 3],
            },
            Request::Finalize(vec![span, span]),
            Request::Release(span),
            Request::Call {
                address: 0xdead,
                interrupted: true,
                ret: Some(Type::F32),
                args: vec![(Type::I32, 5), (Type::F64, 1.5f64.to_bits())],
            },
            Request::Call {
                address: 1,
                interrupted: false,
                ret: None,
                args: vec![],
            },
            Request::Lookup("putchar".into()),
            Request::Interrupt,
        ] {
            let f = req.encode();
            assert_eq!(Request::decode(body(&f)).unwrap(), req);
        }
        for rep in [
            Reply::Ok,
            Reply::Address(42),
            Reply::NotFound,
            Reply::Returned(Some(7)),
            Reply::Returned(None),
            Reply::Trap(3, vec![]),
            Reply::Trap(4, vec![0x1000, 0x2000]),
            Reply::Error("no".into()),
            Reply::Hello {
                version: VERSION,
                region: 0x7000_0000,
            },
        ] {
            let f = rep.encode();
            assert_eq!(Reply::decode(body(&f)).unwrap(), rep);
        }
    }

    #[test]
    fn malformed_frames_are_errors() {
        for b in [
            &[][..],
            &[99],
            &[1, 0],
            &[0x80, 1],
            &[4, 1, 0, 0, 0],
            &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0],
            &[
                0x86, b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0,
            ],
        ] {
            assert!(
                Request::decode(b).is_err() && Reply::decode(b).is_err(),
                "{b:?}"
            );
        }
        let mut short: &[u8] = &[5, 0, 0, 0, 0x80];
        assert!(read_frame(&mut short).is_err());
        let mut empty: &[u8] = &[];
        assert!(read_frame(&mut empty).unwrap().is_none());
        let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(read_frame(&mut huge).is_err());
    }
}
