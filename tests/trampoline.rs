//! The call trampoline of `Engine::call` and `Executor::call`: one for
//! every signature, so distinct signatures cost no code memory; arguments
//! of every type reach registers and the stack where the C ABI puts them.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use kiln::executor::{Executor, InProcessExecutor};
use kiln::ir::{Signature, Type};
use kiln::{Engine, Val};

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn ty_name(t: Type) -> &'static str {
    match t {
        Type::I32 => "i32",
        Type::I64 => "i64",
        Type::F32 => "f32",
        Type::F64 => "f64",
    }
}

/// The value of one argument as the checksum sees it: integers sign
/// extended, floats by their bits.
fn arg_bits(v: Val) -> i64 {
    match v {
        Val::I32(x) => i64::from(x),
        Val::I64(x) => x,
        Val::F32(x) => i64::from(x.to_bits() as i32),
        Val::F64(x) => x.to_bits() as i64,
    }
}

/// `@f{k}` of signature `sig`: folds its arguments in order into
/// `h = h * 31 + bits(arg)` and returns `h` in the return type.
fn checksum_function(k: usize, sig: &Signature) -> String {
    let params: Vec<String> = sig
        .params
        .iter()
        .enumerate()
        .map(|(i, t)| format!("%a{i}: {}", ty_name(*t)))
        .collect();
    let ret = sig
        .ret
        .map_or(String::new(), |t| format!(" -> {}", ty_name(t)));
    let mut body = String::from("    %h0 = copy.i64 7\n");
    for (i, t) in sig.params.iter().enumerate() {
        let b = match t {
            Type::I32 => format!("    %b{i} = sext.i64 %a{i}\n"),
            Type::I64 => format!("    %b{i} = copy.i64 %a{i}\n"),
            Type::F32 => format!("    %c{i} = bitcast.i32 %a{i}\n    %b{i} = sext.i64 %c{i}\n"),
            Type::F64 => format!("    %b{i} = bitcast.i64 %a{i}\n"),
        };
        body.push_str(&b);
        body.push_str(&format!(
            "    %m{i} = mul.i64 %h{i}, 31\n    %h{} = add.i64 %m{i}, %b{i}\n",
            i + 1
        ));
    }
    let h = format!("%h{}", sig.params.len());
    body.push_str(&match sig.ret {
        Some(Type::I64) => format!("    ret {h}\n"),
        Some(Type::I32) => format!("    %r = trunc.i32 {h}\n    ret %r\n"),
        Some(Type::F64) => format!("    %r = bitcast.f64 {h}\n    ret %r\n"),
        Some(Type::F32) => {
            format!("    %t = trunc.i32 {h}\n    %r = bitcast.f32 %t\n    ret %r\n")
        }
        None => "    ret\n".to_string(),
    });
    format!(
        "func @f{k}({}){ret} {{\nentry:\n{body}}}\n",
        params.join(", ")
    )
}

fn expected(args: &[Val], ret: Option<Type>) -> Option<Val> {
    let h = args
        .iter()
        .fold(7i64, |h, a| h.wrapping_mul(31).wrapping_add(arg_bits(*a)));
    ret.map(|t| Val::from_bits(t, h as u64))
}

/// Compiled functions of 80 different signatures, up to 24 parameters of
/// mixed types (so up to 18 on the stack), each returning a checksum of
/// its arguments in order: all reached through the one trampoline.
#[test]
fn mixed_signatures_pass_every_argument_in_place() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sigs = Vec::new();
    let mut text = String::new();
    let mut seen = std::collections::HashSet::new();
    while sigs.len() < 80 {
        let n = (rng.next() % 25) as usize;
        let params: Vec<Type> = (0..n)
            .map(|_| Type::ALL[(rng.next() % 4) as usize])
            .collect();
        let ret = match rng.next() % 5 {
            4 => None,
            r => Some(Type::ALL[r as usize]),
        };
        let sig = Signature::new(params, ret);
        if seen.insert(sig.clone()) {
            text.push_str(&checksum_function(sigs.len(), &sig));
            sigs.push(sig);
        }
    }
    let engine = Engine::default();
    engine.add_module_text("sigs.kir", &text).unwrap();
    for (k, sig) in sigs.iter().enumerate() {
        let args: Vec<Val> = sig
            .params
            .iter()
            .map(|t| {
                let bits = rng.next();
                // Finite, distinct floats; integers of every width.
                match t {
                    Type::F32 => Val::F32((bits % 100_000) as f32 / 7.0),
                    Type::F64 => Val::F64((bits % 1_000_000) as f64 / 3.0),
                    _ => Val::from_bits(*t, bits),
                }
            })
            .collect();
        let got = engine.call(&format!("f{k}"), &args).unwrap();
        assert_eq!(got, expected(&args, sig.ret), "@f{k}: {sig}");
    }
}

extern "C" fn first_of_many(x: i64) -> i64 {
    x.wrapping_mul(3)
}

/// 100,000 distinct signatures through one executor: they all work, and
/// they all share one trampoline (before, each took a 4 KiB page for good,
/// and after ~16,000 every call failed with "out of JIT memory").
///
/// The target reads only its first argument; under the System V ABI the
/// caller owns the extra argument registers and stack slots, so a callee
/// that ignores trailing arguments is called correctly with any of them.
#[test]
fn a_hundred_thousand_signatures_share_one_trampoline() {
    let ex = InProcessExecutor::new(None).unwrap();
    assert_eq!(ex.trampoline_count(), 1);
    let target = first_of_many as *const () as u64;
    let mut seen = std::collections::HashSet::new();
    for i in 0..100_000u64 {
        // Nine base-4 digits after the i64: a different signature for each
        // i (and returning i64 whatever follows).
        let mut params = vec![Type::I64];
        let mut d = i;
        for _ in 0..9 {
            params.push(Type::ALL[(d % 4) as usize]);
            d /= 4;
        }
        let args: Vec<Val> = params
            .iter()
            .enumerate()
            .map(|(j, t)| match j {
                0 => Val::I64(i as i64),
                _ => Val::from_bits(*t, j as u64),
            })
            .collect();
        let sig = Signature::new(params, Some(Type::I64));
        // SAFETY: `target` is a C function whose first parameter is an i64
        // and which returns an i64; further arguments are ignored (see the
        // test's docs).
        let got = unsafe { ex.call(target, &sig, &args) }.unwrap();
        assert_eq!(got, Some(Val::I64(i as i64 * 3)));
        seen.insert(sig);
    }
    assert_eq!(seen.len(), 100_000);
    assert_eq!(ex.trampoline_count(), 1, "reused for every signature");
}

/// A trap in code called through the trampoline still comes back as an
/// error, and the trampoline is usable again right after, with arguments
/// on the stack.
#[test]
fn the_trampoline_survives_a_trap() {
    let engine = Engine::default();
    let mut params = vec!["%d: i64".to_string()];
    params.extend((0..9).map(|i| format!("%x{i}: i64")));
    let text = format!(
        "func @div({}) -> i64 {{\nentry:\n    %q = sdiv.i64 %x8, %d\n    ret %q\n}}\n",
        params.join(", ")
    );
    engine.add_module_text("div.kir", &text).unwrap();
    let args = |d: i64| {
        let mut v = vec![Val::I64(d)];
        v.extend((0..9).map(|i| Val::I64(100 + i)));
        v
    };
    assert_eq!(
        engine.call("div", &args(4)).unwrap(),
        Some(Val::I64(108 / 4))
    );
    assert!(matches!(
        engine.call("div", &args(0)),
        Err(kiln::Error::Trap(_))
    ));
    assert_eq!(engine.call("div", &args(-2)).unwrap(), Some(Val::I64(-54)));
}
