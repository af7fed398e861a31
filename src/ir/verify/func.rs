//! Function bodies: signature, block labels and parameters, and every
//! instruction token by token (types, literals, structure, SSA dominance,
//! calls). Errors come back as `(Loc, message)` and are wrapped with the
//! built-IR context by the caller; the first one in source order wins.

use super::{make_error, valid_name, Ctx, MAX_ALLOCA};
use crate::analysis::{Cfg, DomTree};
use crate::error::{Error, Result};
use crate::ir::entities::{Block, Inst, Value};
use crate::ir::function::{
    BlockCall, Callee, Const, Function, InstData, InstKind, Operand, ValueDef,
};
use crate::ir::module::Module;
use crate::ir::opcode::{Format, Opcode, OperandTy, Suffix};
use crate::ir::srcmap::Loc;
use crate::ir::types::{Signature, Type};
use std::collections::{HashMap, HashSet};

/// Where a value is defined, for dominance checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Undefined,
    FuncParam,
    /// Block and position: `-1` for block parameters, else the index of
    /// the instruction in the block.
    At(u32, i64),
}

/// What an operand position requires.
#[derive(Clone, Copy)]
enum Want {
    /// Exactly this type; a literal takes it.
    Exact(Type),
    /// An integer value; a literal is taken as `i64` (`store8/16/32`).
    IntLiteralI64,
    /// `i32` or `i64`, no literal (source of `sitof`, `uitof`).
    OpenInt,
    /// `f32` or `f64`, no literal (source of `ftosi`, `ftoui`).
    OpenFloat,
    /// Any type, no literal (arguments of an indirect call).
    AnyValue,
}

/// The checks of one function body, with what they share: each value's
/// definition site, the dominator tree, and the names seen so far.
pub(super) struct FuncVerifier<'a> {
    m: &'a Module,
    f: &'a Function,
    def: Vec<Site>,
    dom: DomTree,
    /// Names defined so far, for duplicate detection in source order.
    value_names: HashSet<&'a str>,
}

type Res = std::result::Result<(), (Loc, String)>;

impl<'a> FuncVerifier<'a> {
    pub(super) fn new(m: &'a Module, f: &'a Function) -> Self {
        // First listing of each value wins; any later listing of the same
        // value is reported where it appears.
        let mut def = vec![Site::Undefined; f.values.len()];
        let mut set = |v: Value, site: Site| {
            if let Some(d) = def.get_mut(v.index()) {
                if *d == Site::Undefined {
                    *d = site;
                }
            }
        };
        for &p in &f.params {
            set(p, Site::FuncParam);
        }
        for (bi, b) in f.blocks.iter().enumerate() {
            for &p in &b.params {
                set(p, Site::At(bi as u32, -1));
            }
            for (pos, &i) in b.insts.iter().enumerate() {
                if let Some(r) = f.insts.get(i.index()).and_then(|d| d.result) {
                    set(r, Site::At(bi as u32, pos as i64));
                }
            }
        }
        let dom = DomTree::new(&Cfg::new(f));
        FuncVerifier {
            m,
            f,
            def,
            dom,
            value_names: HashSet::new(),
        }
    }

    fn error(&self, loc: Loc, ctx: &Ctx, message: String) -> Error {
        make_error(&self.m.name, loc, ctx, message)
    }

    /// `%name` of a value (`%vN` when unnamed or missing).
    fn vname(&self, v: Value) -> String {
        match self.f.values.get(v.index()).and_then(|d| d.name.as_deref()) {
            Some(n) => format!("%{n}"),
            None => format!("%{v}"),
        }
    }

    pub(super) fn run(mut self) -> Result<()> {
        let f = self.f;
        let fname = f.name.as_str();
        let fctx = Ctx::Func(fname);
        let floc = f.srcmap.func;
        if f.params.len() != f.sig.params.len() {
            return Err(self.error(
                floc,
                &fctx,
                format!(
                    "{} parameter values for {} parameter types",
                    f.params.len(),
                    f.sig.params.len()
                ),
            ));
        }
        for (i, &p) in f.params.iter().enumerate() {
            let loc = f.srcmap.value(p).or(floc);
            let want = ValueDef::FuncParam(i as u32);
            match f.values.get(p.index()) {
                Some(d)
                    if d.def == want
                        && d.ty == f.sig.params[i]
                        && self.def[p.index()] == Site::FuncParam => {}
                _ => {
                    return Err(self.error(
                        loc,
                        &fctx,
                        format!("{} is not a valid parameter {i}", self.vname(p)),
                    ))
                }
            }
            self.check_value_name(p)
                .map_err(|(l, m)| self.error(l, &fctx, m))?;
        }
        if f.blocks.is_empty() {
            return Err(self.error(
                f.srcmap.end.or(floc),
                &fctx,
                format!("function '@{fname}' has no blocks"),
            ));
        }
        let mut labels: HashSet<&str> = HashSet::with_capacity(f.blocks.len());
        let mut inst_seen = vec![false; f.insts.len()];
        for (bi, bd) in f.blocks.iter().enumerate() {
            let b = Block::new(bi);
            let bctx = Ctx::Block(fname, &bd.name);
            let label_loc = f.srcmap.block(b);
            let berr = |this: &Self, loc: Loc, msg: String| Err(this.error(loc, &bctx, msg));
            if !valid_name(&bd.name, false) {
                return berr(
                    &self,
                    label_loc,
                    format!("invalid block label '{}'", bd.name),
                );
            }
            if !labels.insert(&bd.name) {
                return berr(
                    &self,
                    label_loc,
                    format!("duplicate block label '{}'", bd.name),
                );
            }
            if bi == 0 {
                if let Some(&p) = bd.params.first() {
                    let loc = f.srcmap.value(p).or(label_loc);
                    return berr(
                        &self,
                        loc,
                        format!("entry block '{}' cannot have parameters", bd.name),
                    );
                }
            }
            for (i, &p) in bd.params.iter().enumerate() {
                let loc = f.srcmap.value(p).or(label_loc);
                let ok = f.values.get(p.index()).is_some_and(|d| {
                    d.def == ValueDef::BlockParam(b, i as u32)
                        && self.def[p.index()] == Site::At(bi as u32, -1)
                });
                if !ok {
                    return berr(
                        &self,
                        loc,
                        format!(
                            "{} is not a valid parameter {i} of block '{}'",
                            self.vname(p),
                            bd.name
                        ),
                    );
                }
                if let Err((l, m)) = self.check_value_name(p) {
                    return berr(&self, l, m);
                }
            }
            if bd.insts.is_empty() {
                return berr(&self, label_loc, format!("block '{}' is empty", bd.name));
            }
            for (pos, &inst) in bd.insts.iter().enumerate() {
                let ictx = Ctx::Inst(fname, &bd.name, pos);
                let Some(seen) = inst_seen.get_mut(inst.index()) else {
                    return Err(self.error(
                        label_loc,
                        &ictx,
                        format!("missing instruction {inst}"),
                    ));
                };
                let iloc = f.srcmap.inst(inst);
                if std::mem::replace(seen, true) {
                    return Err(self.error(iloc, &ictx, format!("{inst} appears more than once")));
                }
                if pos > 0 && f.inst(bd.insts[pos - 1]).opcode.is_terminator() {
                    return Err(self.error(
                        iloc,
                        &ictx,
                        format!("block '{}' continues after its terminator", bd.name),
                    ));
                }
                self.check_inst(b, pos, inst)
                    .map_err(|(l, m)| self.error(l, &ictx, m))?;
            }
            let last = bd.insts[bd.insts.len() - 1];
            if !f.inst(last).opcode.is_terminator() {
                let ictx = Ctx::Inst(fname, &bd.name, bd.insts.len() - 1);
                return Err(self.error(
                    f.srcmap.inst(last),
                    &ictx,
                    format!("block '{}' does not end with a terminator", bd.name),
                ));
            }
        }
        Ok(())
    }

    fn check_value_name(&mut self, v: Value) -> Res {
        let Some(name) = self.f.values.get(v.index()).and_then(|d| d.name.as_deref()) else {
            return Ok(());
        };
        let loc = self.f.srcmap.value(v);
        if !valid_name(name, true) {
            return Err((loc, format!("invalid value name '%{name}'")));
        }
        if !self.value_names.insert(name) {
            return Err((loc, format!("duplicate value name '%{name}'")));
        }
        Ok(())
    }

    /// One instruction, token by token.
    fn check_inst(&mut self, b: Block, pos: usize, inst: Inst) -> Res {
        let f = self.f;
        let d = f.inst(inst);
        let info = d.opcode.info();
        let name = info.name;
        let sm = &f.srcmap;
        let iloc = sm.inst(inst);
        if !format_matches(info.format, &d.kind) {
            return Err((iloc, format!("'{name}' has operands of the wrong form")));
        }
        // The result, `%d = `.
        let result_ty = info.result_type(d.ty);
        match d.result {
            Some(r) => {
                let rloc = sm.value(r).or(iloc);
                let this = Site::At(b.0, pos as i64);
                if self.def.get(r.index()) != Some(&this)
                    || f.values[r.index()].def != ValueDef::Inst(inst)
                {
                    return Err((rloc, format!("{} is defined more than once", self.vname(r))));
                }
                self.check_value_name(r)?;
                if result_ty.is_none() && d.opcode != Opcode::Call {
                    return Err((rloc, format!("'{name}' has no result")));
                }
            }
            None => {
                if result_ty.is_some() && d.opcode != Opcode::Call {
                    return Err((iloc, format!("'{name}' needs a result")));
                }
            }
        }
        // The mnemonic and its suffix.
        if d.opcode == Opcode::Call {
            self.check_call_suffix(d, iloc)?;
            if let (Some(r), None) = (d.result, d.ty) {
                let rloc = sm.value(r).or(iloc);
                return Err((rloc, "call without a type suffix has no result".into()));
            }
        } else {
            match (info.suffix, d.ty) {
                (Suffix::None, Some(_)) => {
                    return Err((iloc, format!("'{name}' takes no type suffix")));
                }
                (Suffix::None, None) | (Suffix::Optional, _) => {}
                (s, None) => {
                    return Err((
                        iloc,
                        format!("'{name}' needs a type suffix ({})", s.describe()),
                    ));
                }
                (s, Some(t)) if !s.allows(t) => {
                    return Err((
                        iloc,
                        format!(
                            "'{name}' cannot take type suffix {t} (expected {})",
                            s.describe()
                        ),
                    ));
                }
                _ => {}
            }
        }
        if let (Some(r), Some(t)) = (d.result, result_ty) {
            let have = f.values[r.index()].ty;
            if have != t {
                return Err((
                    sm.value(r).or(iloc),
                    format!("result {} has type {have}, expected {t}", self.vname(r)),
                ));
            }
        }
        let at = (b, pos as i64);
        // Operands, in textual order.
        match &d.kind {
            InstKind::Unary { arg } => self.fixed_operands(inst, at, d, &[*arg]),
            InstKind::Binary { args } => self.fixed_operands(inst, at, d, args),
            InstKind::Select { args } => self.fixed_operands(inst, at, d, args),
            InstKind::Load { ptr, .. } => self.fixed_operands(inst, at, d, &[*ptr]),
            InstKind::Store { args, .. } => self.fixed_operands(inst, at, d, args),
            InstKind::Alloca { size, align } => {
                if *size > MAX_ALLOCA {
                    let loc = sm
                        .insts
                        .get(inst.index())
                        .map_or(iloc, |l| l.extra.or(iloc));
                    return Err((
                        loc,
                        format!("alloca size {size} exceeds the limit of {MAX_ALLOCA} bytes"),
                    ));
                }
                if !align.is_power_of_two() || *align > 16 {
                    let loc = sm
                        .insts
                        .get(inst.index())
                        .map_or(iloc, |l| l.extra2.or(iloc));
                    return Err((
                        loc,
                        format!("alloca alignment {align} is not a power of two up to 16"),
                    ));
                }
                Ok(())
            }
            InstKind::Addr { sym } => {
                if sym.index() >= self.m.symbols.len() {
                    return Err((
                        self.extra_loc(inst),
                        format!("address of missing symbol {sym}"),
                    ));
                }
                Ok(())
            }
            InstKind::Call { callee, args } => self.check_call(inst, at, callee, args),
            InstKind::Ret { value } => self.check_ret(inst, at, *value),
            InstKind::Jmp { dest } => self.check_block_call(inst, at, dest, 0, 0),
            InstKind::Br {
                cond,
                then_dest,
                else_dest,
            } => {
                let want = Want::Exact(Type::I32);
                self.operand_as(inst, at, 0, *cond, want, "br", "branch condition ")?;
                self.check_block_call(inst, at, then_dest, 0, 1)?;
                self.check_block_call(inst, at, else_dest, 1, 1 + then_dest.args.len())
            }
            InstKind::Switch {
                value,
                default,
                cases,
            } => {
                let Some(ty) = d.ty else { return Ok(()) };
                self.operand(inst, at, 0, *value, Want::Exact(ty), "")?;
                self.switch_target(inst, *default, 0)?;
                let mut keys: HashMap<u64, Const> = HashMap::with_capacity(cases.len());
                for (i, case) in cases.iter().enumerate() {
                    let kloc = sm.key(inst, i);
                    if let Some(msg) = literal_error(case.key, ty) {
                        return Err((kloc, msg));
                    }
                    if let Some(&old) = keys.get(&case.key.bits(ty)) {
                        let key = const_text(case.key);
                        let msg = if old == case.key {
                            format!("duplicate switch key {key}")
                        } else {
                            let old = const_text(old);
                            format!("switch key {key} duplicates key {old} (equal as {ty})")
                        };
                        return Err((kloc, msg));
                    }
                    keys.insert(case.key.bits(ty), case.key);
                    self.switch_target(inst, case.block, i + 1)?;
                }
                Ok(())
            }
            InstKind::Trap => Ok(()),
        }
    }

    fn extra_loc(&self, inst: Inst) -> Loc {
        let sm = &self.f.srcmap;
        sm.insts
            .get(inst.index())
            .map_or(Loc::NONE, |l| l.extra.or(l.inst))
    }

    /// The operands typed by the opcode table's `operands` column.
    fn fixed_operands(&self, inst: Inst, at: (Block, i64), d: &InstData, ops: &[Operand]) -> Res {
        let info = d.opcode.info();
        for (i, (&op, &rule)) in ops.iter().zip(info.operands).enumerate() {
            let want = match rule {
                OperandTy::OpenInt => Want::OpenInt,
                OperandTy::OpenFloat => Want::OpenFloat,
                OperandTy::AnyIntLiteralI64 => Want::IntLiteralI64,
                other => match other.fixed(d.ty) {
                    Some(t) => Want::Exact(t),
                    None => return Ok(()),
                },
            };
            let role = if d.opcode == Opcode::Select && i == 0 {
                "select condition "
            } else {
                ""
            };
            self.operand_as(inst, at, i, op, want, info.name, role)?;
        }
        Ok(())
    }

    /// One value operand (`index` in [`InstData::operands`] order) used at
    /// `at`: defined, dominating, of the wanted type; or a literal allowed
    /// here that fits.
    fn operand(
        &self,
        inst: Inst,
        at: (Block, i64),
        index: usize,
        op: Operand,
        want: Want,
        opname: &str,
    ) -> Res {
        self.operand_as(inst, at, index, op, want, opname, "")
    }

    /// [`Self::operand`], naming the operand's `role` in a type mismatch.
    #[allow(clippy::too_many_arguments)]
    fn operand_as(
        &self,
        inst: Inst,
        at: (Block, i64),
        index: usize,
        op: Operand,
        want: Want,
        opname: &str,
        role: &str,
    ) -> Res {
        let loc = self.f.srcmap.operand(inst, index);
        match op {
            Operand::Const(c) => {
                let ty = match want {
                    Want::Exact(t) => t,
                    Want::IntLiteralI64 => Type::I64,
                    Want::OpenInt | Want::OpenFloat => {
                        return Err((
                            loc,
                            format!("the operand of '{opname}' must be a value, not a literal"),
                        ))
                    }
                    Want::AnyValue => {
                        return Err((
                            loc,
                            "arguments of an indirect call must be values, not literals".into(),
                        ))
                    }
                };
                match literal_error(c, ty) {
                    Some(msg) => Err((loc, msg)),
                    None => Ok(()),
                }
            }
            Operand::Value(v) => {
                self.check_dominance(v, at, loc)?;
                let ty = self.f.values[v.index()].ty;
                let (ok, expected) = match want {
                    Want::Exact(t) => (ty == t, t.name()),
                    Want::IntLiteralI64 | Want::OpenInt => (ty.is_int(), "i32 or i64"),
                    Want::OpenFloat => (ty.is_float(), "f32 or f64"),
                    Want::AnyValue => (true, ""),
                };
                if ok {
                    Ok(())
                } else {
                    Err((
                        loc,
                        format!("{role}{} has type {ty}, expected {expected}", self.vname(v)),
                    ))
                }
            }
        }
    }

    /// A use of `v` at `(block, position)`: the definition must dominate.
    /// In an unreachable block only earlier definitions of that block and
    /// function parameters count.
    fn check_dominance(&self, v: Value, (ub, upos): (Block, i64), loc: Loc) -> Res {
        let site = self.def.get(v.index()).copied().unwrap_or(Site::Undefined);
        let ok = match site {
            Site::Undefined => {
                return Err((loc, format!("use of undefined value {}", self.vname(v))));
            }
            Site::FuncParam => true,
            Site::At(db, dpos) if db == ub.0 => dpos < upos,
            Site::At(db, _) => self.dom.is_reachable(ub) && self.dom.dominates(Block(db), ub),
        };
        if ok {
            Ok(())
        } else {
            Err((
                loc,
                format!(
                    "use of {} is not dominated by its definition",
                    self.vname(v)
                ),
            ))
        }
    }

    fn check_call_suffix(&self, d: &InstData, iloc: Loc) -> Res {
        let InstKind::Call {
            callee: Callee::Direct(sym),
            ..
        } = &d.kind
        else {
            return Ok(());
        };
        let Some(s) = self.m.symbols.get(sym.index()) else {
            return Ok(()); // reported at the callee token
        };
        let Some(sig) = s.signature() else {
            return Ok(()); // reported at the callee token
        };
        let callee = &s.name;
        match (d.ty, sig.ret) {
            (None, Some(r)) => Err((
                iloc,
                format!("call of '@{callee}' needs type suffix {r} (its return type)"),
            )),
            (Some(_), None) => Err((
                iloc,
                format!("call of '@{callee}' takes no type suffix ('@{callee}' returns nothing)"),
            )),
            (Some(t), Some(r)) if t != r => Err((
                iloc,
                format!("call of '@{callee}' has type suffix {t}, but '@{callee}' returns {r}"),
            )),
            _ => Ok(()),
        }
    }

    fn check_call(&self, inst: Inst, at: (Block, i64), callee: &Callee, args: &[Operand]) -> Res {
        match callee {
            Callee::Direct(sym) => {
                let loc = self.extra_loc(inst);
                let Some(s) = self.m.symbols.get(sym.index()) else {
                    return Err((loc, format!("call of missing symbol {sym}")));
                };
                let Some(sig) = s.signature() else {
                    return Err((loc, format!("'@{}' is not a function", s.name)));
                };
                if args.len() != sig.params.len() {
                    return Err((
                        loc,
                        arg_count_message(&format!("'@{}'", s.name), sig, args.len()),
                    ));
                }
                for (i, (&a, &t)) in args.iter().zip(&sig.params).enumerate() {
                    self.operand(inst, at, i, a, Want::Exact(t), "call")?;
                }
                Ok(())
            }
            Callee::Indirect(fp) => {
                if let Operand::Const(_) = fp {
                    let loc = self.f.srcmap.operand(inst, 0);
                    return Err((
                        loc,
                        "the callee of an indirect call must be a value, not a literal".into(),
                    ));
                }
                self.operand(inst, at, 0, *fp, Want::Exact(Type::I64), "call")?;
                for (i, &a) in args.iter().enumerate() {
                    self.operand(inst, at, i + 1, a, Want::AnyValue, "call")?;
                }
                Ok(())
            }
        }
    }

    fn check_ret(&self, inst: Inst, at: (Block, i64), value: Option<Operand>) -> Res {
        let f = self.f;
        match (value, f.sig.ret) {
            (None, None) => Ok(()),
            (None, Some(t)) => Err((
                f.srcmap.inst(inst),
                format!("'@{}' returns {t}, so 'ret' needs a value", f.name),
            )),
            (Some(_), None) => Err((
                f.srcmap.operand(inst, 0),
                format!(
                    "'@{}' returns nothing, so 'ret' cannot have a value",
                    f.name
                ),
            )),
            (Some(v), Some(t)) => self.operand(inst, at, 0, v, Want::Exact(t), "ret"),
        }
    }

    /// A target block: must exist and not be the entry.
    fn target(
        &self,
        inst: Inst,
        block: Block,
        label: usize,
    ) -> std::result::Result<&'a crate::ir::BlockData, (Loc, String)> {
        let loc = self.f.srcmap.label(inst, label);
        let Some(bd) = self.f.blocks.get(block.index()) else {
            return Err((loc, format!("branch to missing {block}")));
        };
        if block == self.f.entry() {
            return Err((
                loc,
                format!("entry block '{}' cannot be a branch target", bd.name),
            ));
        }
        Ok(bd)
    }

    /// A `jmp`/`br` target (label `label`, arguments starting at operand
    /// `first_arg`).
    fn check_block_call(
        &self,
        inst: Inst,
        at: (Block, i64),
        dest: &BlockCall,
        label: usize,
        first_arg: usize,
    ) -> Res {
        let bd = self.target(inst, dest.block, label)?;
        if dest.args.len() != bd.params.len() {
            let loc = self.f.srcmap.label(inst, label);
            let n = bd.params.len();
            return Err((
                loc,
                format!(
                    "block '{}' takes {n} argument{}, but {} given",
                    bd.name,
                    if n == 1 { "" } else { "s" },
                    dest.args.len()
                ),
            ));
        }
        for (i, (&a, &p)) in dest.args.iter().zip(&bd.params).enumerate() {
            let t = self.f.values.get(p.index()).map_or(Type::I64, |d| d.ty);
            self.operand(inst, at, first_arg + i, a, Want::Exact(t), "jmp")?;
        }
        Ok(())
    }

    fn switch_target(&self, inst: Inst, block: Block, label: usize) -> Res {
        let bd = self.target(inst, block, label)?;
        if !bd.params.is_empty() {
            return Err((
                self.f.srcmap.label(inst, label),
                format!("switch target '{}' cannot have parameters", bd.name),
            ));
        }
        Ok(())
    }
}

fn arg_count_message(callee: &str, sig: &Signature, given: usize) -> String {
    let n = sig.params.len();
    format!(
        "{callee} takes {n} argument{}, but {given} given",
        if n == 1 { "" } else { "s" }
    )
}

/// Whether the operand layout `kind` is the one `format` calls for.
fn format_matches(format: Format, kind: &InstKind) -> bool {
    matches!(
        (format, kind),
        (Format::Unary, InstKind::Unary { .. })
            | (Format::Binary, InstKind::Binary { .. })
            | (Format::Select, InstKind::Select { .. })
            | (Format::Load, InstKind::Load { .. })
            | (Format::Store, InstKind::Store { .. })
            | (Format::Alloca, InstKind::Alloca { .. })
            | (Format::Addr, InstKind::Addr { .. })
            | (Format::Call, InstKind::Call { .. })
            | (Format::Ret, InstKind::Ret { .. })
            | (Format::Jmp, InstKind::Jmp { .. })
            | (Format::Br, InstKind::Br { .. })
            | (Format::Switch, InstKind::Switch { .. })
            | (Format::Trap, InstKind::Trap)
    )
}

/// A literal as it reads in a message.
fn const_text(c: Const) -> String {
    match c {
        Const::Int(v) => v.to_string(),
        Const::Float(b) => format!("{:?}", f64::from_bits(b)),
    }
}

/// Why literal `c` cannot be a value of type `ty`, if it cannot.
fn literal_error(c: Const, ty: Type) -> Option<String> {
    if c.fits(ty) {
        return None;
    }
    Some(match c {
        Const::Float(_) => format!("float literal {} where {ty} is expected", const_text(c)),
        Const::Int(_) => format!("literal {} does not fit {ty}", const_text(c)),
    })
}
