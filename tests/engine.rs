//! Engine facade: in-process add / finalize / call, typed and generic
//! calls, traps, host symbols, concurrency, W^X.

use kiln::{Engine, Error, TrapCode, Val};

#[test]
fn add_finalize_call_native() {
    let e = Engine::default();
    e.add_module_text(
        "a.kir",
        "func @add(%a: i64, %b: i64) -> i64 {\nentry:\n    %c = add.i64 %a, %b\n    ret %c\n}\n",
    )
    .unwrap();
    let f: extern "C" fn(i64, i64) -> i64 = unsafe { e.get_function("add").unwrap() };
    assert_eq!(f(40, 2), 42);
    assert_eq!(
        e.call("add", &[Val::I64(5), Val::I64(-7)]).unwrap(),
        Some(Val::I64(-2))
    );
}
