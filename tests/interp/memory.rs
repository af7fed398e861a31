//! Loads and stores of every width on alloca, data and malloc memory.

use super::build::*;

#[test]
fn alloca_loads_and_stores_every_width() {
    use Opcode::*;
    // Store 0x8899aabbccddeeff at p+1 (unaligned) over zeroes, then read
    // it back in pieces with every load form.
    let cases: &[(Opcode, Type, i64, i64)] = &[
        (Load, I64, 1, 0x8899aabbccddeeffu64 as i64),
        (Load8s, I64, 1, -1),
        (Load8u, I64, 1, 0xff),
        (Load16s, I64, 1, 0xeeffu16 as i16 as i64),
        (Load16u, I64, 1, 0xeeff),
        (Load32s, I64, 5, 0x8899aabbu32 as i32 as i64),
        (Load32u, I64, 5, 0x8899aabb),
        (Load8s, I32, 8, 0x88u8 as i8 as i64),
        (Load8u, I32, 8, 0x88),
        (Load16s, I32, 7, 0x8899u16 as i16 as i64),
        (Load16u, I32, 7, 0x8899),
        (Load, I32, 5, 0x8899aabbu32 as i32 as i64),
    ];
    for &(op, ty, off, want) in cases {
        let mut fb = Fb::new("m", &[I64], Some(ty));
        let x = fb.param(0);
        let p = fb.alloca(32, 16);
        fb.store(Store, Some(I64), int(0), p, 0);
        fb.store(Store, Some(I64), int(0), p, 8);
        fb.store(Store, Some(I64), x, p, 1);
        let r = fb.load(op, ty, p, off);
        fb.ret(Some(r));
        let got = run1(fb, &[Vi64(0x8899aabbccddeeffu64 as i64)])
            .unwrap()
            .unwrap();
        let want = if ty == I32 {
            Vi32(want as i32)
        } else {
            Vi64(want)
        };
        assert_eq!(got, want, "{}.{ty} at {off}", op.name());
    }
}

#[test]
fn narrow_stores_write_low_bits_only() {
    use Opcode::*;
    let mut fb = Fb::new("m", &[I32], Some(I64));
    let p = fb.alloca(8, 8);
    fb.store(Store, Some(I64), int(-1), p, 0);
    fb.store(Store8, None, int(0x1234), p, 0); // literal taken as i64
    let x = fb.param(0);
    fb.store(Store16, None, x, p, 2);
    fb.store(Store32, None, int(0), p, 4);
    let r = fb.load(Load, I64, p, 0);
    fb.ret(Some(r));
    assert_eq!(
        run1(fb, &[Vi32(0x7abcd)]).unwrap(),
        Some(Vi64(0x0000_0000_abcd_ff34))
    );
}

#[test]
fn float_loads_and_stores() {
    use Opcode::*;
    let mut fb = Fb::new("m", &[F32, F64], Some(F64));
    let p = fb.alloca(16, 8);
    let (a, b) = (fb.param(0), fb.param(1));
    fb.store(Store, Some(F32), a, p, 0);
    fb.store(Store, Some(F64), b, p, 4);
    let a2 = fb.load(Load, F32, p, 0);
    let b2 = fb.load(Load, F64, p, 4);
    let a3 = fb.un(Fext, F64, a2);
    let s = fb.bin(Fadd, F64, a3, b2);
    fb.ret(Some(s));
    assert_eq!(
        run1(fb, &[Vf32(1.5), Vf64(0.25)]).unwrap(),
        Some(Vf64(1.75))
    );
}

#[test]
fn data_items_are_laid_out_and_linked_for_real() {
    use Opcode::*;
    // data @t = { i8 1, i64 7 11, @counter+8, i16 -2, f32 1.5 }
    // data @counter = { i64 0 5 }
    // func @f() -> i64: load @t's fields and follow the pointer to @counter.
    let mut mb = Mb::new("d.kir");
    let counter = mb.data(
        "counter",
        Linkage::Local,
        vec![DataValue::Int {
            bytes: 8,
            values: vec![0, 5],
        }],
    );
    let t = mb.data(
        "t",
        Linkage::Export,
        vec![
            DataValue::Int {
                bytes: 1,
                values: vec![1],
            },
            DataValue::Int {
                bytes: 8,
                values: vec![7, 11],
            },
            DataValue::SymAddr {
                sym: counter,
                addend: 8,
            },
            DataValue::Int {
                bytes: 2,
                values: vec![-2],
            },
            DataValue::F32(vec![1.5f32.to_bits()]),
        ],
    );
    let mut fb = Fb::new("f", &[], Some(I64));
    let pt = fb.addr(t);
    // Layout: i8 at 0, i64s at 8 and 16, pointer at 24, i16 at 32, f32 at 36.
    let b0 = fb.load(Load8s, I64, pt, 0);
    let x = fb.load(Load, I64, pt, 8);
    let y = fb.load(Load, I64, pt, 16);
    let ptr = fb.load(Load, I64, pt, 24);
    let five = fb.load(Load, I64, ptr, 0);
    let m2 = fb.load(Load16s, I64, pt, 32);
    let fl = fb.load(Load, F32, pt, 36);
    let fli = fb.un(Ftosi, I64, fl);
    // Alignment of the object itself: addr & 15 must be 0.
    let al = fb.bin(And, I64, pt, int(15));
    // 1*1 + 7*10 + 11*100 + 5*1000 + (-2)*10000 + 1*100000 + al*1000000
    let mut acc = b0;
    for (val, k) in [
        (x, 10),
        (y, 100),
        (five, 1000),
        (m2, 10000),
        (fli, 100000),
        (al, 1000000),
    ] {
        let t = fb.bin(Mul, I64, val, int(k));
        acc = fb.bin(Add, I64, acc, t);
    }
    // Write through the pointer and read the change back via @counter.
    fb.store(Store, Some(I64), int(9), ptr, -8);
    let pc = fb.addr(counter);
    let nine = fb.load(Load, I64, pc, 0);
    let t9 = fb.bin(Mul, I64, nine, int(10_000_000));
    let acc = fb.bin(Add, I64, acc, t9);
    fb.ret(Some(acc));
    mb.func(Linkage::Export, fb);
    let got = run_with(&[mb.m], &HostFunctions::new(), "f", &[]).unwrap();
    assert_eq!(
        got,
        Some(Vi64(1 + 70 + 1100 + 5000 - 20000 + 100000 + 90_000_000))
    );
}

#[test]
fn data_persists_between_calls() {
    use Opcode::*;
    let mut mb = Mb::new("c.kir");
    let c = mb.data("c", Linkage::Local, vec![DataValue::Zero(8)]);
    let mut fb = Fb::new("bump", &[], Some(I64));
    let p = fb.addr(c);
    let x = fb.load(Load, I64, p, 0);
    let x1 = fb.bin(Add, I64, x, int(1));
    fb.store(Store, Some(I64), x1, p, 0);
    fb.ret(Some(x1));
    mb.func(Linkage::Export, fb);
    let modules = [mb.m];
    let mut it = Interpreter::new(&modules, &HostFunctions::new()).unwrap();
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(1)));
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(2)));
    assert_eq!(it.call("bump", &[]).unwrap(), Some(Vi64(3)));
}

#[test]
fn c_library_memory_functions_work_on_real_addresses() {
    use Opcode::*;
    // malloc 16, memset it to 0x41, store an i32 at +4, memcpy to an
    // alloca buffer, memcmp equal, free, return the loaded i64.
    let mut mb = Mb::new("c.kir");
    let malloc = mb.extern_func("malloc", sig(&[I64], Some(I64)));
    let memset = mb.extern_func("memset", sig(&[I64, I32, I64], Some(I64)));
    let memcpy = mb.extern_func("memcpy", sig(&[I64, I64, I64], Some(I64)));
    let memcmp = mb.extern_func("memcmp", sig(&[I64, I64, I64], Some(I32)));
    let free = mb.extern_func("free", sig(&[I64], None));
    let mut fb = Fb::new("f", &[], Some(I64));
    let h = fb.call(Some(I64), Callee::Direct(malloc), vec![int(16)]);
    fb.call(
        Some(I64),
        Callee::Direct(memset),
        vec![h, int(0x41), int(16)],
    );
    fb.store(Store, Some(I32), int(-2), h, 4);
    let buf = fb.alloca(16, 8);
    fb.call(Some(I64), Callee::Direct(memcpy), vec![buf, h, int(16)]);
    let same = fb.call(Some(I32), Callee::Direct(memcmp), vec![buf, h, int(16)]);
    fb.store(Store8, None, int(0x42), buf, 15);
    let diff = fb.call(Some(I32), Callee::Direct(memcmp), vec![buf, h, int(16)]);
    fb.call(None, Callee::Direct(free), vec![h]);
    let x = fb.load(Load, I64, buf, 0);
    let ok1 = fb.bin(Eq, I32, same, int(0));
    let ok2 = fb.bin(Sgt, I32, diff, int(0));
    let both = fb.bin(And, I32, ok1, ok2);
    let r = fb.ins(
        Select,
        Some(I64),
        InstKind::Select {
            args: [both, x, int(-1)],
        },
    );
    fb.ret(Some(r));
    mb.func(Linkage::Export, fb);
    let got = run_with(&[mb.m], &HostFunctions::c_library(), "f", &[]).unwrap();
    assert_eq!(got, Some(Vi64(0xffff_fffe_4141_4141u64 as i64)));
}

#[test]
fn alloca_slots_are_per_call_and_aligned() {
    use Opcode::*;
    // Recursive: each frame stores its n in its own alloca slot, recurses,
    // then reads the slot back: n + f(n-1), so frames must not share slots.
    let mut mb = Mb::new("a.kir");
    let fsym = mb.func_sym("f", Linkage::Export, sig(&[I64], Some(I64)));
    let mut fb = Fb::new("f", &[I64], Some(I64));
    let (rec, _) = fb.block("rec", &[]);
    let (base, _) = fb.block("base", &[]);
    let n = fb.param(0);
    let _pad = fb.alloca(3, 1);
    let p = fb.alloca(8, 16);
    fb.store(Store, Some(I64), n, p, 0);
    let z = fb.bin(Eq, I64, n, int(0));
    fb.br(z, (base, vec![]), (rec, vec![]));
    fb.at(rec);
    let n1 = fb.bin(Sub, I64, n, int(1));
    let r = fb.call(Some(I64), Callee::Direct(fsym), vec![n1]);
    let back = fb.load(Load, I64, p, 0);
    let s = fb.bin(Add, I64, back, r);
    let al = fb.bin(And, I64, p, int(15));
    let s2 = fb.bin(Add, I64, s, al);
    fb.ret(Some(s2));
    fb.at(base);
    fb.ret(Some(int(0)));
    mb.define(fsym, fb);
    let got = run_with(&[mb.m], &HostFunctions::new(), "f", &[Vi64(100)]).unwrap();
    assert_eq!(got, Some(Vi64(5050)));
}
