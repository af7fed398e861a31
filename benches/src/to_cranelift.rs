//! A translator from kiln IR ([`kiln::ir::Module`]) to Cranelift IR through
//! `cranelift-frontend`, so that kiln and Cranelift compile exactly the same
//! programs in the benchmarks.
//!
//! Semantics follow kiln's SPEC where Cranelift's differ:
//! - division: an explicit check of the divisor (and of `MIN / -1` for
//!   `sdiv`) branches to a cold block per trap reason that calls the host
//!   trap function [`TRAP_SYMBOL`] `(i32 code)` and then `trap`s; codes are
//!   [`TRAP_UNREACHABLE`], [`TRAP_DIVISION_BY_ZERO`],
//!   [`TRAP_INTEGER_OVERFLOW`]. `srem` of `MIN` by -1 is 0 in both IRs;
//! - `trap` calls the trap function with [`TRAP_UNREACHABLE`];
//! - shifts are taken modulo the width in both IRs; `ftosi`/`ftoui` are
//!   `fcvt_to_{s,u}int_sat`; float compares use the ordered condition codes
//!   except `fne`, which is Cranelift's unordered-or-not-equal;
//! - comparisons produce Cranelift's `i8` and are zero-extended to `i32`;
//! - `alloca` is an explicit stack slot; offsets that do not fit Cranelift's
//!   32-bit immediate are added to the pointer first.
//!
//! Blocks are translated in reverse postorder, so every value is defined
//! before it is used (SSA dominance); blocks unreachable from the entry
//! become a single `trap`. Local symbols are declared anonymous, so several
//! modules can share one [`JITModule`] as they share one kiln engine.
//!
//! Invariant: the input module is verified (`kiln::ir::verify`); anything
//! this translator cannot express returns `Err`, it never panics on a
//! verified module.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    types as clt, AbiParam, BlockArg, FuncRef, GlobalValue, InstBuilder, MemFlagsData, SigRef,
    StackSlotData, StackSlotKind, UserFuncName,
};
use cranelift_codegen::{ir as clir, settings, settings::Configurable, Context};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Switch};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, DataDescription, DataId, FuncId, Linkage, Module};
use kiln::ir::{
    Block, Callee, Const, DataValue, Function, InstKind, Linkage as KLinkage, Module as KModule,
    Opcode, Operand, Signature, SymId, SymbolKind, Type, Value,
};
use std::collections::HashMap;

/// The host function every translated trap calls: `(i32 code)`.
pub const TRAP_SYMBOL: &str = "kiln_bench_trap";
pub const TRAP_UNREACHABLE: i32 = 0;
pub const TRAP_DIVISION_BY_ZERO: i32 = 1;
pub const TRAP_INTEGER_OVERFLOW: i32 = 2;

/// The reason kiln prints for a trap code.
pub fn trap_reason(code: i32) -> &'static str {
    match code {
        TRAP_DIVISION_BY_ZERO => "division by zero",
        TRAP_INTEGER_OVERFLOW => "integer overflow",
        _ => "unreachable",
    }
}

/// The default trap function: reports like kiln's default handler and
/// aborts (a translated trap must not return).
pub extern "C" fn default_trap(code: i32) {
    eprintln!("trap: {}", trap_reason(code));
    std::process::abort();
}

/// Cranelift's code-generation settings compared in the benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClifOpts {
    /// `none` or `speed`.
    pub opt_level: &'static str,
    /// `single_pass` or `backtracking`.
    pub regalloc: &'static str,
}

impl ClifOpts {
    /// The four configurations the report compares.
    pub const ALL: [ClifOpts; 4] = [
        ClifOpts::new("none", "single_pass"),
        ClifOpts::new("none", "backtracking"),
        ClifOpts::new("speed", "single_pass"),
        ClifOpts::new("speed", "backtracking"),
    ];

    pub const fn new(opt_level: &'static str, regalloc: &'static str) -> Self {
        ClifOpts {
            opt_level,
            regalloc,
        }
    }

    /// A short label: `clif-none-sp`, `clif-speed-bt`, ...
    pub fn label(self) -> String {
        let ra = if self.regalloc == "single_pass" {
            "sp"
        } else {
            "bt"
        };
        format!("clif-{}-{ra}", self.opt_level)
    }
}

/// A Cranelift error or an IR construct the translator cannot express.
pub type ClifResult<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A new JIT module for the host with `opts`; `symbols` are host symbols
/// (looked up before the process's own), the trap function is `trap`.
///
/// First gives back the reservations kiln keeps for its next engines
/// ([`kiln::memory::release_pooled`]): `JITModule` maps its code page
/// by page wherever the system puts it and reaches other functions with
/// 32-bit displacements, so a pooled gigabyte between two of its pages
/// puts them out of each other's reach (its relocation then panics).
pub fn new_jit(
    opts: ClifOpts,
    trap: extern "C" fn(i32),
    symbols: &[(&str, *const u8)],
) -> ClifResult<JITModule> {
    kiln::memory::release_pooled();
    let mut flags = settings::builder();
    flags.set("opt_level", opts.opt_level).map_err(err)?;
    flags
        .set("regalloc_algorithm", opts.regalloc)
        .map_err(err)?;
    flags.set("use_colocated_libcalls", "false").map_err(err)?;
    flags.set("is_pic", "false").map_err(err)?;
    // Cranelift's verifier of its own IR is a debugging aid that
    // production embedders turn off; kiln's verifier checks untrusted input
    // and stays on in kiln's timings.
    flags.set("enable_verifier", "false").map_err(err)?;
    let isa = cranelift_native::builder()
        .map_err(err)?
        .finish(settings::Flags::new(flags))
        .map_err(err)?;
    let mut b = JITBuilder::with_isa(isa, default_libcall_names());
    b.symbol(TRAP_SYMBOL, trap as *const u8);
    for &(name, ptr) in symbols {
        b.symbol(name, ptr);
    }
    Ok(JITModule::new(b))
}

/// What a translated module defines, by kiln symbol name.
#[derive(Default)]
pub struct Translated {
    pub funcs: HashMap<String, (FuncId, Signature)>,
    pub datas: HashMap<String, DataId>,
}

/// Reusable per-thread state for translation (Cranelift contexts).
pub struct Translator {
    ctx: Context,
    fctx: FunctionBuilderContext,
    trap_func: Option<FuncId>,
}

impl Default for Translator {
    fn default() -> Self {
        Self::new()
    }
}

fn cl_type(t: Type) -> clir::Type {
    match t {
        Type::I32 => clt::I32,
        Type::I64 => clt::I64,
        Type::F32 => clt::F32,
        Type::F64 => clt::F64,
    }
}

fn cl_signature(jit: &JITModule, sig: &Signature) -> clir::Signature {
    let mut s = jit.make_signature();
    s.params
        .extend(sig.params.iter().map(|&t| AbiParam::new(cl_type(t))));
    s.returns
        .extend(sig.ret.iter().map(|&t| AbiParam::new(cl_type(t))));
    s
}

/// Where a kiln symbol lives in the JIT module.
#[derive(Clone, Copy)]
enum SymRef {
    Func(FuncId),
    Data(DataId),
}

impl Translator {
    pub fn new() -> Self {
        Translator {
            ctx: Context::new(),
            fctx: FunctionBuilderContext::new(),
            trap_func: None,
        }
    }

    /// Declares and defines every item of `m` in `jit` (not finalized:
    /// call `jit.finalize_definitions()` afterwards).
    pub fn translate_module(&mut self, jit: &mut JITModule, m: &KModule) -> ClifResult<Translated> {
        let trap_sig = {
            let mut s = jit.make_signature();
            s.params.push(AbiParam::new(clt::I32));
            s
        };
        let trap_func = jit
            .declare_function(TRAP_SYMBOL, Linkage::Import, &trap_sig)
            .map_err(err)?;
        self.trap_func = Some(trap_func);

        let mut syms = Vec::with_capacity(m.symbols.len());
        let mut out = Translated::default();
        for s in &m.symbols {
            let r = match &s.kind {
                SymbolKind::Func { sig, .. } => {
                    let csig = cl_signature(jit, sig);
                    let id = match s.linkage {
                        KLinkage::Local => jit.declare_anonymous_function(&csig),
                        KLinkage::Export => jit.declare_function(&s.name, Linkage::Export, &csig),
                        KLinkage::Import => jit.declare_function(&s.name, Linkage::Import, &csig),
                    }
                    .map_err(err)?;
                    if s.linkage == KLinkage::Export {
                        out.funcs.insert(s.name.clone(), (id, sig.clone()));
                    }
                    SymRef::Func(id)
                }
                SymbolKind::Data { body } => {
                    let writable = match body {
                        Some(d) => !m.datas.get(d.index()).is_some_and(|d| d.readonly),
                        None => true,
                    };
                    let id = match s.linkage {
                        KLinkage::Local => jit.declare_anonymous_data(writable, false),
                        KLinkage::Export => {
                            jit.declare_data(&s.name, Linkage::Export, writable, false)
                        }
                        KLinkage::Import => {
                            jit.declare_data(&s.name, Linkage::Import, writable, false)
                        }
                    }
                    .map_err(err)?;
                    if s.linkage == KLinkage::Export {
                        out.datas.insert(s.name.clone(), id);
                    }
                    SymRef::Data(id)
                }
            };
            syms.push(r);
        }
        for (i, s) in m.symbols.iter().enumerate() {
            match (&s.kind, syms[i]) {
                (SymbolKind::Data { body: Some(d) }, SymRef::Data(id)) => {
                    let def = m.datas.get(d.index()).ok_or("data body out of range")?;
                    let desc = data_description(jit, def, &syms)?;
                    jit.define_data(id, &desc).map_err(err)?;
                }
                (SymbolKind::Func { body: Some(f), .. }, SymRef::Func(id)) => {
                    let func = m.funcs.get(f.index()).ok_or("function body out of range")?;
                    self.translate_function(jit, m, func, id, &syms)?;
                    jit.define_function(id, &mut self.ctx).map_err(err)?;
                    jit.clear_context(&mut self.ctx);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn translate_function(
        &mut self,
        jit: &mut JITModule,
        m: &KModule,
        f: &Function,
        id: FuncId,
        syms: &[SymRef],
    ) -> ClifResult<()> {
        jit.clear_context(&mut self.ctx);
        self.ctx.func.signature = cl_signature(jit, &f.sig);
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        let trap_func = self.trap_func.ok_or("no trap function declared")?;
        let b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
        let trap_ref = jit.declare_func_in_func(trap_func, b.func);
        let mut fb = FnBuilder {
            b,
            f,
            vals: vec![None; f.values.len()],
            blocks: Vec::with_capacity(f.blocks.len()),
            func_refs: HashMap::new(),
            data_refs: HashMap::new(),
            sig_refs: HashMap::new(),
            trap_blocks: [None; 3],
            trap_ref,
        };
        for bd in &f.blocks {
            let cb = fb.b.create_block();
            for &p in &bd.params {
                let v = fb.b.append_block_param(cb, cl_type(f.value_type(p)));
                fb.vals[p.index()] = Some(v);
            }
            fb.blocks.push(cb);
        }
        let entry = *fb.blocks.first().ok_or("function without blocks")?;
        fb.b.append_block_params_for_function_params(entry);
        let params: Vec<_> = fb.b.block_params(entry).to_vec();
        for (&kv, cv) in f.params.iter().zip(params) {
            fb.vals[kv.index()] = Some(cv);
        }
        let (order, reachable) = reverse_postorder(f);
        for &blk in &order {
            fb.b.switch_to_block(fb.blocks[blk.index()]);
            for &inst in &f.blocks[blk.index()].insts {
                fb.inst(jit, m, syms, inst)?;
            }
        }
        for (i, &r) in reachable.iter().enumerate() {
            if !r {
                fb.b.switch_to_block(fb.blocks[i]);
                fb.b.ins().trap(clir::TrapCode::unwrap_user(1));
            }
        }
        fb.b.seal_all_blocks();
        fb.b.finalize(jit.target_config());
        Ok(())
    }

    /// Defines `name`: `extern "C" fn(args: *const u64, ret: *mut u64)`,
    /// which loads the arguments of `sig` (one 8-byte slot each, `f32`/`i32`
    /// in the low half), calls `callee` and stores its result in `*ret`.
    /// Used to call translated functions of any signature with [`kiln::Val`]s.
    pub fn define_trampoline(
        &mut self,
        jit: &mut JITModule,
        callee: FuncId,
        sig: &Signature,
    ) -> ClifResult<FuncId> {
        jit.clear_context(&mut self.ctx);
        let mut tsig = jit.make_signature();
        tsig.params.push(AbiParam::new(clt::I64));
        tsig.params.push(AbiParam::new(clt::I64));
        let id = jit.declare_anonymous_function(&tsig).map_err(err)?;
        self.ctx.func.signature = tsig;
        self.ctx.func.name = UserFuncName::user(0, id.as_u32());
        let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
        let fref = jit.declare_func_in_func(callee, b.func);
        let blk = b.create_block();
        b.append_block_params_for_function_params(blk);
        b.switch_to_block(blk);
        let (args_p, ret_p) = (b.block_params(blk)[0], b.block_params(blk)[1]);
        let flags = MemFlagsData::new();
        let args: Vec<_> = sig
            .params
            .iter()
            .enumerate()
            .map(|(i, &t)| b.ins().load(cl_type(t), flags, args_p, (i * 8) as i32))
            .collect();
        let call = b.ins().call(fref, &args);
        if sig.ret.is_some() {
            let r = b.inst_results(call)[0];
            b.ins().store(flags, r, ret_p, 0);
        }
        b.ins().return_(&[]);
        b.seal_all_blocks();
        b.finalize(jit.target_config());
        jit.define_function(id, &mut self.ctx).map_err(err)?;
        jit.clear_context(&mut self.ctx);
        Ok(id)
    }
}

/// Blocks reachable from the entry in reverse postorder, and which blocks
/// are reachable.
fn reverse_postorder(f: &Function) -> (Vec<Block>, Vec<bool>) {
    let n = f.blocks.len();
    let mut seen = vec![false; n];
    let mut post = Vec::with_capacity(n);
    if n == 0 {
        return (post, seen);
    }
    // (block, next successor index)
    let mut stack: Vec<(Block, usize)> = vec![(Block::new(0), 0)];
    seen[0] = true;
    while let Some(top) = stack.last_mut() {
        let (blk, i) = *top;
        let succs = f
            .terminator(blk)
            .map(|t| f.successors(t))
            .unwrap_or_default();
        if let Some(&s) = succs.get(i) {
            top.1 += 1;
            if s.index() < n && !seen[s.index()] {
                seen[s.index()] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(blk);
            stack.pop();
        }
    }
    post.reverse();
    (post, seen)
}

fn data_description(
    jit: &mut JITModule,
    def: &kiln::ir::DataDef,
    syms: &[SymRef],
) -> ClifResult<DataDescription> {
    let (offsets, size) = def.layout();
    let size = usize::try_from(size).map_err(err)?;
    if size > (1 << 30) {
        return Err(format!("data item of {size} bytes is too large"));
    }
    let mut bytes = vec![0u8; size];
    let mut desc = DataDescription::new();
    let mut relocs = Vec::new();
    for (v, &off) in def.values.iter().zip(&offsets) {
        let off = off as usize;
        match v {
            DataValue::Int { bytes: w, values } => {
                let w = *w as usize;
                for (k, &x) in values.iter().enumerate() {
                    let le = (x as u64).to_le_bytes();
                    bytes[off + k * w..off + (k + 1) * w].copy_from_slice(&le[..w]);
                }
            }
            DataValue::F32(xs) => {
                for (k, x) in xs.iter().enumerate() {
                    bytes[off + 4 * k..off + 4 * k + 4].copy_from_slice(&x.to_le_bytes());
                }
            }
            DataValue::F64(xs) => {
                for (k, x) in xs.iter().enumerate() {
                    bytes[off + 8 * k..off + 8 * k + 8].copy_from_slice(&x.to_le_bytes());
                }
            }
            DataValue::Bytes(bs) => bytes[off..off + bs.len()].copy_from_slice(bs),
            DataValue::Zero(_) => {}
            DataValue::SymAddr { sym, addend } => relocs.push((off, *sym, *addend)),
        }
    }
    for (off, sym, addend) in relocs {
        let off = u32::try_from(off).map_err(err)?;
        match syms.get(sym.index()) {
            Some(&SymRef::Func(id)) => {
                let fr = jit.declare_func_in_data(id, &mut desc);
                if addend != 0 {
                    return Err("function address with an addend in data".into());
                }
                desc.write_function_addr(off, fr);
            }
            Some(&SymRef::Data(id)) => {
                let gv = jit.declare_data_in_data(id, &mut desc);
                desc.write_data_addr(off, gv, addend);
            }
            None => return Err("data refers to an unknown symbol".into()),
        }
    }
    desc.define(bytes.into_boxed_slice());
    desc.set_align(kiln::ir::DATA_ALIGN);
    Ok(desc)
}

/// Translation state of one function.
struct FnBuilder<'a, 'f> {
    b: FunctionBuilder<'a>,
    f: &'f Function,
    vals: Vec<Option<clir::Value>>,
    blocks: Vec<clir::Block>,
    func_refs: HashMap<SymId, FuncRef>,
    data_refs: HashMap<SymId, GlobalValue>,
    sig_refs: HashMap<Signature, SigRef>,
    trap_blocks: [Option<clir::Block>; 3],
    trap_ref: FuncRef,
}

impl FnBuilder<'_, '_> {
    fn val(&self, v: Value) -> ClifResult<clir::Value> {
        self.vals
            .get(v.index())
            .copied()
            .flatten()
            .ok_or_else(|| format!("value {v} used before its definition"))
    }

    /// An operand as a Cranelift value of type `ty` (literals materialized).
    fn op(&mut self, o: Operand, ty: Type) -> ClifResult<clir::Value> {
        match o {
            Operand::Value(v) => self.val(v),
            Operand::Const(c) => Ok(self.konst(c, ty)),
        }
    }

    fn konst(&mut self, c: Const, ty: Type) -> clir::Value {
        let bits = c.bits(ty);
        match ty {
            Type::I32 => self.b.ins().iconst(clt::I32, bits as u32 as i32 as i64),
            Type::I64 => self.b.ins().iconst(clt::I64, bits as i64),
            Type::F32 => self
                .b
                .ins()
                .f32const(clir::immediates::Ieee32::with_bits(bits as u32)),
            Type::F64 => self
                .b
                .ins()
                .f64const(clir::immediates::Ieee64::with_bits(bits)),
        }
    }

    /// The type of an operand: its value's, or `expected` for a literal.
    fn ty_of(&self, o: Operand, expected: Type) -> Type {
        self.f.operand_type(o, expected)
    }

    /// The cold block that calls the trap function with `code`.
    fn trap_block(&mut self, code: i32) -> clir::Block {
        let slot = code.clamp(0, 2) as usize;
        if let Some(b) = self.trap_blocks[slot] {
            return b;
        }
        let cur = self.b.current_block();
        let tb = self.b.create_block();
        self.b.set_cold_block(tb);
        self.b.switch_to_block(tb);
        let c = self.b.ins().iconst(clt::I32, code as i64);
        self.b.ins().call(self.trap_ref, &[c]);
        self.b.ins().trap(clir::TrapCode::unwrap_user(1));
        if let Some(cur) = cur {
            self.b.switch_to_block(cur);
        }
        self.trap_blocks[slot] = Some(tb);
        tb
    }

    /// Branches to the trap block for `code` when `cond` is nonzero.
    fn trap_if(&mut self, cond: clir::Value, code: i32) {
        let tb = self.trap_block(code);
        let cont = self.b.create_block();
        self.b.ins().brif(cond, tb, &[], cont, &[]);
        self.b.switch_to_block(cont);
    }

    fn block_args(&mut self, dest: &kiln::ir::BlockCall) -> ClifResult<Vec<BlockArg>> {
        let params = &self.f.blocks[dest.block.index()].params;
        let f = self.f;
        let mut out = Vec::with_capacity(dest.args.len());
        for (i, &a) in f.args(dest.args).iter().enumerate() {
            let ty = params
                .get(i)
                .map(|&p| self.f.value_type(p))
                .ok_or("too many block arguments")?;
            out.push(BlockArg::Value(self.op(a, ty)?));
        }
        Ok(out)
    }

    fn block(&self, b: Block) -> ClifResult<clir::Block> {
        self.blocks
            .get(b.index())
            .copied()
            .ok_or_else(|| "branch to an unknown block".to_string())
    }

    fn func_ref(&mut self, jit: &mut JITModule, syms: &[SymRef], s: SymId) -> ClifResult<FuncRef> {
        if let Some(&r) = self.func_refs.get(&s) {
            return Ok(r);
        }
        let Some(&SymRef::Func(id)) = syms.get(s.index()) else {
            return Err("call of a non-function symbol".into());
        };
        let r = jit.declare_func_in_func(id, self.b.func);
        self.func_refs.insert(s, r);
        Ok(r)
    }

    /// The address of `p + off` split into a base and a 32-bit offset.
    fn address(&mut self, p: Operand, off: i64) -> ClifResult<(clir::Value, i32)> {
        let base = self.op(p, Type::I64)?;
        match i32::try_from(off) {
            Ok(o) => Ok((base, o)),
            Err(_) => Ok((self.b.ins().iadd_imm_s(base, off), 0)),
        }
    }

    fn inst(
        &mut self,
        jit: &mut JITModule,
        m: &KModule,
        syms: &[SymRef],
        inst: kiln::ir::Inst,
    ) -> ClifResult<()> {
        let d = self.f.inst(inst);
        let ty = d.ty.unwrap_or(Type::I64);
        let flags = MemFlagsData::new();
        let res: Option<clir::Value> = match (&d.kind, d.opcode) {
            (InstKind::Unary { arg }, op) => {
                let src_ty = match op {
                    Opcode::Sext | Opcode::Zext => Type::I32,
                    Opcode::Trunc => Type::I64,
                    Opcode::Fext => Type::F32,
                    Opcode::Ftrunc => Type::F64,
                    Opcode::Bitcast => ty.bitcast_peer(),
                    Opcode::Sitof | Opcode::Uitof => self.ty_of(*arg, Type::I64),
                    Opcode::Ftosi | Opcode::Ftoui => self.ty_of(*arg, Type::F64),
                    _ => ty,
                };
                let a = self.op(*arg, src_ty)?;
                let ct = cl_type(ty);
                let i = self.b.ins();
                Some(match op {
                    Opcode::Copy => a,
                    Opcode::Neg => i.ineg(a),
                    Opcode::Not => i.bnot(a),
                    Opcode::Fneg => i.fneg(a),
                    Opcode::Fabs => i.fabs(a),
                    Opcode::Fsqrt => i.sqrt(a),
                    Opcode::Sext => i.sextend(clt::I64, a),
                    Opcode::Zext => i.uextend(clt::I64, a),
                    Opcode::Trunc => i.ireduce(clt::I32, a),
                    Opcode::Fext => i.fpromote(clt::F64, a),
                    Opcode::Ftrunc => i.fdemote(clt::F32, a),
                    Opcode::Sitof => i.fcvt_from_sint(ct, a),
                    Opcode::Uitof => i.fcvt_from_uint(ct, a),
                    Opcode::Ftosi => i.fcvt_to_sint_sat(ct, a),
                    Opcode::Ftoui => i.fcvt_to_uint_sat(ct, a),
                    Opcode::Bitcast => i.bitcast(ct, flags, a),
                    other => return Err(format!("unexpected unary opcode {}", other.name())),
                })
            }
            (InstKind::Binary { args }, op) => {
                let x = self.op(args[0], ty)?;
                let y = self.op(args[1], ty)?;
                Some(self.binary(op, ty, x, y)?)
            }
            (InstKind::Select { args }, _) => {
                let c = self.op(args[0], Type::I32)?;
                let x = self.op(args[1], ty)?;
                let y = self.op(args[2], ty)?;
                Some(self.b.ins().select(c, x, y))
            }
            (InstKind::Load { ptr, offset }, op) => {
                let (p, o) = self.address(*ptr, *offset)?;
                let ct = cl_type(ty);
                let i = self.b.ins();
                Some(match op {
                    Opcode::Load => i.load(ct, flags, p, o),
                    Opcode::Load8s => i.sload8(ct, flags, p, o),
                    Opcode::Load8u => i.uload8(ct, flags, p, o),
                    Opcode::Load16s => i.sload16(ct, flags, p, o),
                    Opcode::Load16u => i.uload16(ct, flags, p, o),
                    Opcode::Load32s => i.sload32(flags, p, o),
                    Opcode::Load32u => i.uload32(flags, p, o),
                    other => return Err(format!("unexpected load opcode {}", other.name())),
                })
            }
            (InstKind::Store { args, offset }, op) => {
                let vty = match op {
                    Opcode::Store => ty,
                    _ => self.ty_of(args[0], Type::I64),
                };
                let v = self.op(args[0], vty)?;
                let (p, o) = self.address(args[1], *offset)?;
                let i = self.b.ins();
                match op {
                    Opcode::Store => i.store(flags, v, p, o),
                    Opcode::Store8 => i.istore8(flags, v, p, o),
                    Opcode::Store16 => i.istore16(flags, v, p, o),
                    Opcode::Store32 => {
                        if vty == Type::I32 {
                            i.store(flags, v, p, o)
                        } else {
                            i.istore32(flags, v, p, o)
                        }
                    }
                    other => return Err(format!("unexpected store opcode {}", other.name())),
                };
                None
            }
            (InstKind::Alloca { size, align }, _) => {
                let size = u32::try_from(*size)
                    .map_err(|_| format!("alloca of {size} bytes exceeds Cranelift's limit"))?;
                let shift = align.max(&1).trailing_zeros() as u8;
                let ss = self.b.create_sized_stack_slot(StackSlotData::new(
                    StackSlotKind::ExplicitSlot,
                    size,
                    shift,
                ));
                Some(self.b.ins().stack_addr(clt::I64, ss, 0))
            }
            (InstKind::Addr { sym }, _) => match syms.get(sym.index()) {
                Some(&SymRef::Func(_)) => {
                    let r = self.func_ref(jit, syms, *sym)?;
                    Some(self.b.ins().func_addr(clt::I64, r))
                }
                Some(&SymRef::Data(id)) => {
                    let gv = match self.data_refs.get(sym) {
                        Some(&g) => g,
                        None => {
                            let g = jit.declare_data_in_func(id, self.b.func);
                            self.data_refs.insert(*sym, g);
                            g
                        }
                    };
                    Some(self.b.ins().symbol_value(clt::I64, gv))
                }
                None => return Err("addr of an unknown symbol".into()),
            },
            (InstKind::Call { callee, args }, _) => {
                let args = self.f.args(*args);
                let call = match callee {
                    Callee::Direct(s) => {
                        let sig = m
                            .symbols
                            .get(s.index())
                            .and_then(|s| s.signature())
                            .ok_or("call of a non-function symbol")?;
                        let mut cargs = Vec::with_capacity(args.len());
                        for (&a, &t) in args.iter().zip(&sig.params) {
                            cargs.push(self.op(a, t)?);
                        }
                        let r = self.func_ref(jit, syms, *s)?;
                        self.b.ins().call(r, &cargs)
                    }
                    Callee::Indirect(fp) => {
                        let fp = self.op(*fp, Type::I64)?;
                        let mut sig = Signature::new(Vec::with_capacity(args.len()), d.ty);
                        let mut cargs = Vec::with_capacity(args.len());
                        for &a in args {
                            let t = self.ty_of(a, Type::I64);
                            sig.params.push(t);
                            cargs.push(self.op(a, t)?);
                        }
                        let sr = match self.sig_refs.get(&sig) {
                            Some(&r) => r,
                            None => {
                                let r = self.b.import_signature(cl_signature(jit, &sig));
                                self.sig_refs.insert(sig, r);
                                r
                            }
                        };
                        self.b.ins().call_indirect(sr, fp, &cargs)
                    }
                };
                if d.result.is_some() {
                    self.b.inst_results(call).first().copied()
                } else {
                    None
                }
            }
            (InstKind::Ret { value }, _) => {
                match value {
                    Some(v) => {
                        let rt = self
                            .f
                            .sig
                            .ret
                            .ok_or("ret with a value in a void function")?;
                        let v = self.op(*v, rt)?;
                        self.b.ins().return_(&[v]);
                    }
                    None => {
                        self.b.ins().return_(&[]);
                    }
                }
                None
            }
            (InstKind::Jmp { dest }, _) => {
                let args = self.block_args(dest)?;
                let blk = self.block(dest.block)?;
                self.b.ins().jump(blk, &args);
                None
            }
            (
                InstKind::Br {
                    cond,
                    then_dest,
                    else_dest,
                },
                _,
            ) => {
                let c = self.op(*cond, Type::I32)?;
                let ta = self.block_args(then_dest)?;
                let ea = self.block_args(else_dest)?;
                let (tb, eb) = (self.block(then_dest.block)?, self.block(else_dest.block)?);
                self.b.ins().brif(c, tb, &ta, eb, &ea);
                None
            }
            (
                InstKind::Switch {
                    value,
                    default,
                    cases,
                },
                _,
            ) => {
                let v = self.op(*value, ty)?;
                let mut sw = Switch::new();
                let mut seen = std::collections::HashSet::new();
                for c in self.f.cases(*cases) {
                    let key = c.key.bits(ty);
                    if seen.insert(key) {
                        sw.set_entry(key as u128, self.block(c.block)?);
                    }
                }
                let def = self.block(*default)?;
                sw.emit(&mut self.b, v, def);
                None
            }
            (InstKind::Trap, _) => {
                let tb = self.trap_block(TRAP_UNREACHABLE);
                self.b.ins().jump(tb, &[]);
                None
            }
        };
        if let (Some(kv), Some(cv)) = (d.result, res) {
            self.vals[kv.index()] = Some(cv);
        }
        Ok(())
    }

    fn binary(
        &mut self,
        op: Opcode,
        ty: Type,
        x: clir::Value,
        y: clir::Value,
    ) -> ClifResult<clir::Value> {
        let icmp = |s: &mut Self, cc: IntCC| {
            let c = s.b.ins().icmp(cc, x, y);
            s.b.ins().uextend(clt::I32, c)
        };
        let fcmp = |s: &mut Self, cc: FloatCC| {
            let c = s.b.ins().fcmp(cc, x, y);
            s.b.ins().uextend(clt::I32, c)
        };
        Ok(match op {
            Opcode::Add => self.b.ins().iadd(x, y),
            Opcode::Sub => self.b.ins().isub(x, y),
            Opcode::Mul => self.b.ins().imul(x, y),
            Opcode::And => self.b.ins().band(x, y),
            Opcode::Or => self.b.ins().bor(x, y),
            Opcode::Xor => self.b.ins().bxor(x, y),
            Opcode::Shl => self.b.ins().ishl(x, y),
            Opcode::Shr => self.b.ins().ushr(x, y),
            Opcode::Sar => self.b.ins().sshr(x, y),
            Opcode::Sdiv | Opcode::Udiv | Opcode::Srem | Opcode::Urem => {
                let zero = self.b.ins().icmp_imm_s(IntCC::Equal, y, 0);
                self.trap_if(zero, TRAP_DIVISION_BY_ZERO);
                match op {
                    Opcode::Sdiv => {
                        let min = if ty == Type::I32 {
                            i32::MIN as i64
                        } else {
                            i64::MIN
                        };
                        let xm = self.b.ins().icmp_imm_s(IntCC::Equal, x, min);
                        let ym = self.b.ins().icmp_imm_s(IntCC::Equal, y, -1);
                        let both = self.b.ins().band(xm, ym);
                        self.trap_if(both, TRAP_INTEGER_OVERFLOW);
                        self.b.ins().sdiv(x, y)
                    }
                    Opcode::Udiv => self.b.ins().udiv(x, y),
                    Opcode::Srem => self.b.ins().srem(x, y),
                    _ => self.b.ins().urem(x, y),
                }
            }
            Opcode::Fadd => self.b.ins().fadd(x, y),
            Opcode::Fsub => self.b.ins().fsub(x, y),
            Opcode::Fmul => self.b.ins().fmul(x, y),
            Opcode::Fdiv => self.b.ins().fdiv(x, y),
            Opcode::Eq => icmp(self, IntCC::Equal),
            Opcode::Ne => icmp(self, IntCC::NotEqual),
            Opcode::Slt => icmp(self, IntCC::SignedLessThan),
            Opcode::Sle => icmp(self, IntCC::SignedLessThanOrEqual),
            Opcode::Sgt => icmp(self, IntCC::SignedGreaterThan),
            Opcode::Sge => icmp(self, IntCC::SignedGreaterThanOrEqual),
            Opcode::Ult => icmp(self, IntCC::UnsignedLessThan),
            Opcode::Ule => icmp(self, IntCC::UnsignedLessThanOrEqual),
            Opcode::Ugt => icmp(self, IntCC::UnsignedGreaterThan),
            Opcode::Uge => icmp(self, IntCC::UnsignedGreaterThanOrEqual),
            Opcode::Feq => fcmp(self, FloatCC::Equal),
            Opcode::Fne => fcmp(self, FloatCC::NotEqual),
            Opcode::Flt => fcmp(self, FloatCC::LessThan),
            Opcode::Fle => fcmp(self, FloatCC::LessThanOrEqual),
            Opcode::Fgt => fcmp(self, FloatCC::GreaterThan),
            Opcode::Fge => fcmp(self, FloatCC::GreaterThanOrEqual),
            other => return Err(format!("unexpected binary opcode {}", other.name())),
        })
    }
}

/// A set of kiln modules compiled by Cranelift into one finalized
/// [`JITModule`], callable by name with [`kiln::Val`]s.
pub struct ClifProgram {
    jit: Option<JITModule>,
    entries: HashMap<String, (*const u8, Signature)>,
    /// The exported functions themselves.
    funcs: HashMap<String, *const u8>,
}

impl ClifProgram {
    /// Translates and finalizes `modules` with `opts`. Every exported
    /// function gets a trampoline so that [`ClifProgram::call`] works for
    /// any signature.
    pub fn compile(
        modules: &[KModule],
        opts: ClifOpts,
        trap: extern "C" fn(i32),
        symbols: &[(&str, *const u8)],
    ) -> ClifResult<ClifProgram> {
        let mut jit = new_jit(opts, trap, symbols)?;
        let mut t = Translator::new();
        let mut tramps = Vec::new();
        let mut raw = Vec::new();
        for m in modules {
            let tr = t.translate_module(&mut jit, m)?;
            for (name, (id, sig)) in tr.funcs {
                let tid = t.define_trampoline(&mut jit, id, &sig)?;
                raw.push((name.clone(), id));
                tramps.push((name, tid, sig));
            }
        }
        jit.finalize_definitions().map_err(err)?;
        let funcs = raw
            .into_iter()
            .map(|(n, id)| (n, jit.get_finalized_function(id)))
            .collect();
        let entries = tramps
            .into_iter()
            .map(|(n, id, s)| (n, (jit.get_finalized_function(id), s)))
            .collect();
        Ok(ClifProgram {
            jit: Some(jit),
            entries,
            funcs,
        })
    }

    /// Calls exported function `name`.
    ///
    /// # Safety
    /// The compiled program runs natively: a program with undefined
    /// behaviour (SPEC section 5) can do anything; a trap calls the trap
    /// function given to [`ClifProgram::compile`].
    pub unsafe fn call(&self, name: &str, args: &[kiln::Val]) -> ClifResult<Option<kiln::Val>> {
        let (tramp, sig) = self
            .entries
            .get(name)
            .ok_or_else(|| format!("no exported function @{name}"))?;
        if args.len() != sig.params.len() || args.iter().zip(&sig.params).any(|(a, &t)| a.ty() != t)
        {
            return Err(format!("@{name} takes {sig}"));
        }
        let slots: Vec<u64> = args.iter().map(|a| a.to_bits()).collect();
        let mut ret = 0u64;
        // SAFETY: `tramp` is a finalized trampoline of signature
        // `extern "C" fn(*const u64, *mut u64)` (define_trampoline) that
        // reads `sig.params.len()` slots (checked above) and writes one.
        let f: extern "C" fn(*const u64, *mut u64) = unsafe { std::mem::transmute(*tramp) };
        f(slots.as_ptr(), &mut ret);
        Ok(sig.ret.map(|t| kiln::Val::from_bits(t, ret)))
    }

    /// The finalized code of exported function `name` (C calling
    /// convention, signature [`ClifProgram::signature`]).
    pub fn function(&self, name: &str) -> Option<*const u8> {
        self.funcs.get(name).copied()
    }

    /// The kiln signature of exported function `name`.
    pub fn signature(&self, name: &str) -> Option<&Signature> {
        self.entries.get(name).map(|(_, s)| s)
    }
}

impl Drop for ClifProgram {
    fn drop(&mut self) {
        if let Some(jit) = self.jit.take() {
            // SAFETY: the trampolines and code are not used after the
            // program is dropped (`call` borrows `self`).
            unsafe { jit.free_memory() };
        }
    }
}
