//! Finalizing: pending batches of Loaded modules become Finalized together.
//!
//! [`Registry::finalize_ready`] finalizes the *ready set*: the largest set
//! of pending batches whose modules reference only finalized modules or
//! modules of the set (so mutually recursive modules loaded by different
//! threads are finalized together, and nothing callable ever reaches code
//! that is not). It relocates every module of the set, hands the bytes to
//! the executor, seals each batch, and moves the modules to Finalized. A
//! failure sends every module of the set back to Added and discards the
//! set's batches; batches outside the set are untouched.

use super::loader::{self, RelocCounts, Relocatable};
use super::{Finalized, Loaded, Pending, Registry, State};
use crate::error::{Error, Result};
use crate::executor::TargetSection;
use crate::memory::SectionKind;
use smallvec::SmallVec;

impl Registry {
    /// Indices of the pending batches that can be finalized now: the
    /// largest set whose batches reference only finalized modules or
    /// batches of the set (removing a batch that is not ready only makes
    /// others less ready, so removing them one at a time until none is
    /// left to remove finds it).
    fn ready_set(&self) -> SmallVec<[usize; 4]> {
        let mut ready: SmallVec<[usize; 4]> = (0..self.pending.len())
            .filter(|&i| self.pending[i].is_some())
            .collect();
        loop {
            let before = ready.len();
            let mut k = 0;
            while k < ready.len() {
                if self.batch_ready(ready[k], &ready) {
                    k += 1;
                } else {
                    ready.remove(k);
                }
            }
            if ready.len() == before {
                return ready;
            }
        }
    }

    /// Whether every module of pending batch `i` references only finalized
    /// modules or modules of the batches `set`.
    fn batch_ready(&self, i: usize, set: &[usize]) -> bool {
        let Some(p) = &self.pending[i] else {
            return false;
        };
        p.modules.iter().all(|&m| {
            self.entry(m)
                .deps
                .iter()
                .all(|&d| match &self.entry(d).state {
                    State::Finalized(_) => true,
                    State::Loaded(l) => set.contains(&(l.batch as usize)),
                    _ => false,
                })
        })
    }

    /// Finalizes the ready set (see the module docs). Returns whether
    /// anything was finalized.
    pub fn finalize_ready(&mut self) -> Result<bool> {
        let ready = self.ready_set();
        if ready.is_empty() {
            return Ok(false);
        }
        if let Err(e) = self.relocate_set(&ready) {
            for &i in &ready {
                self.unload_batch(i);
            }
            return Err(e);
        }
        let mut written: SmallVec<[TargetSection; 4]> = SmallVec::new();
        let mut first_err = None;
        for &i in &ready {
            if let Err(e) = self.seal(i, &mut written) {
                first_err.get_or_insert(e);
            }
        }
        self.stats.finalizes += 1;
        let wrote = self.executor.finalize_sections(&written);
        match first_err {
            Some(e) => Err(e),
            None => wrote.map(|()| true),
        }
    }

    /// Applies the relocations of every module of the batches `set`.
    fn relocate_set(&mut self, set: &[usize]) -> Result<()> {
        let mut counts = RelocCounts::default();
        for &i in set {
            let Some(mut p) = self.pending[i].take() else {
                continue;
            };
            let mut result = Ok(());
            for &slot in &p.modules {
                let e = self.entry(slot);
                let State::Loaded(m) = &e.state else {
                    continue;
                };
                let r = Relocatable {
                    name: self.name_of(slot),
                    ir: m.source.as_ref().map(|s| s.module()),
                    sections: &m.sections,
                    defined: &m.defined,
                    relocs: &m.relocs,
                    names: &m.names,
                    veneers: &m.veneers,
                };
                result = loader::relocate(&r, &mut p.batch, &self.symbols, &mut counts);
                if result.is_err() {
                    break;
                }
            }
            self.pending[i] = Some(p);
            result?;
        }
        self.stats.relocations_applied += counts.applied;
        self.stats.calls_through_stubs += counts.through_stubs;
        Ok(())
    }

    /// Writes batch `i` to the executor, seals it and makes its modules
    /// Finalized; on an error its modules go back to Added.
    fn seal(&mut self, i: usize, written: &mut SmallVec<[TargetSection; 4]>) -> Result<()> {
        let Some(Pending { batch, modules }) = self.pending[i].take() else {
            return Ok(());
        };
        for &slot in &modules {
            let State::Loaded(m) = &self.entry(slot).state else {
                continue;
            };
            if let Err(e) = loader::write_out(&*self.executor, &batch, &m.sections, written) {
                self.pending[i] = Some(Pending { batch, modules });
                self.unload_batch(i);
                return Err(e);
            }
        }
        let bodies: SmallVec<[u64; 4]> = modules
            .iter()
            .map(|&slot| match &self.entry(slot).state {
                State::Loaded(m) => m
                    .body
                    .and_then(|b| {
                        loader::defined_address(&m.defined, &loader::bases(&batch, &m.sections), b)
                    })
                    .unwrap_or(0),
                _ => 0,
            })
            .collect();
        let mut fin = match self.mm.finalize(batch) {
            Ok(f) => f,
            Err(e) => {
                // The memory manager leaked the batch; the modules go back
                // to Added so that a later finalize can retry.
                for &slot in &modules {
                    self.unload(slot);
                }
                return Err(e);
            }
        };
        self.stats.last_touched += modules.len();
        let mut first_err = None;
        for (&slot, body) in modules.iter().zip(bodies) {
            let State::Loaded(m) = self.set_state(slot, State::Free) else {
                continue;
            };
            let sections: SmallVec<[_; 3]> =
                m.sections.iter().filter_map(|s| fin.take(s.r)).collect();
            if let Some(text) = sections.iter().find(|s| s.kind() == SectionKind::Text) {
                let Loaded { debug, names, .. } = *m;
                let name = |i: usize| names.get(i).unwrap_or("?");
                self.debug.module_finalized(debug, &name, text);
            }
            self.set_state(slot, State::Finalized(Finalized::new(sections, body)));
            if body != 0 {
                if let Err(e) = self.after_seal(slot, body) {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Sends every module of pending batch `i` back to Added and returns
    /// the batch's memory.
    pub(crate) fn unload_batch(&mut self, i: usize) {
        let Some(p) = self.pending.get_mut(i).and_then(Option::take) else {
            return;
        };
        for &slot in &p.modules {
            self.unload(slot);
        }
        // The batch never ran; if even discarding fails the memory is only
        // leaked, which is not worth masking the first error.
        let _ = self.mm.discard(p.batch);
    }

    /// Loaded module `slot` back to Added (its batch is discarded by the
    /// caller).
    fn unload(&mut self, slot: u32) {
        let State::Loaded(m) = self.set_state(slot, State::Free) else {
            return;
        };
        for &(id, _) in &m.exports {
            if let Some(s) = self.symbols.get_mut(id) {
                s.set_address(None);
            }
        }
        self.clear_edges(slot);
        for s in m.sections.iter().filter_map(|s| s.remote) {
            // Best effort: a failure only leaks executor memory.
            let _ = self.executor.release_section(s);
        }
        match m.source {
            Some(source) => {
                self.set_state(slot, State::Added(source));
            }
            None => self.free_entry(slot),
        }
    }

    /// Moves a section of a Loaded module to `address` in the executor's
    /// memory: relocations are computed for it at finalize.
    pub fn map_section_address(
        &mut self,
        id: crate::registry::ModuleId,
        kind: SectionKind,
        address: u64,
    ) -> Result<()> {
        let slot = self.live_slot(id)?;
        let (batch, old) = {
            let e = self.entry(slot);
            let State::Loaded(m) = &e.state else {
                return Err(Error::Argument(format!(
                    "{id} is not loaded: sections can be mapped only between load and finalize"
                )));
            };
            let Some(s) = m.sections.iter().find(|s| s.kind == kind) else {
                return Err(Error::Argument(format!(
                    "module `{}` has no {} section",
                    self.name_of(slot),
                    kind.name()
                )));
            };
            (m.batch as usize, (s.r, s.remote))
        };
        let Some(mut p) = self.pending[batch].take() else {
            return Err(Error::Runtime("loaded module without a batch".into()));
        };
        let moved = p.batch.set_target_address(old.0, address);
        if moved.is_ok() {
            self.refresh_addresses(slot, &p.batch);
        }
        self.pending[batch] = Some(p);
        moved?;
        if let Some(old_remote) = old.1 {
            // The embedder chose another place: give the executor's back.
            if let State::Loaded(m) = &mut self.entry_mut(slot).state {
                if let Some(s) = m.sections.iter_mut().find(|s| s.kind == kind) {
                    s.remote = None;
                }
            }
            self.executor.release_section(old_remote)?;
        }
        Ok(())
    }

    /// Finalizes every pending batch that can be (modules loaded without
    /// finalizing, see [`Registry::load`]) until none is ready.
    pub fn finalize(&mut self) -> Result<()> {
        while self.finalize_ready()? {}
        Ok(())
    }
}
