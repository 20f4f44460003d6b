//! A session's layout: its resolved settings, the arena slots of the forward pass and the KV
//! cache, the RoPE tables it keeps, and the memory plan of the whole session. Computed without
//! allocating anything large, so a plan can be shown or refused before the arena exists.

use tensorsharp_kernels::BlockQ8a;

use super::kv::KvCache;
use super::params::SessionParams;
use crate::arena::{Arena, MemoryPlan, Slot};
use crate::error::Result;
use crate::model::Model;
use crate::plan::{address_space_room, detect_ram_budget, Budget, SessionPlan, ADDRESS_SPACE_MARGIN, WORKER_STACK};
use crate::residency::Placement;

/// The forward pass's buffers in the arena. "Rows" are the tokens of a prefill chunk (at most
/// `n_batch`); one row per token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Buffers {
    /// The residual stream, `n_embd` per row.
    pub residual: Slot<f32>,
    /// The residual after a norm (the input of the next projections), `n_embd` per row.
    pub normed: Slot<f32>,
    /// A projection's input quantized to 8 bits with per-32 scales.
    pub input_q8: Slot<BlockQ8a>,
    /// A projection's input quantized to 8 bits with per-256 (K-quant) scales.
    pub input_q8k: Slot<BlockQ8a>,
    /// Queries, `n_head * head_dim` per row.
    pub q: Slot<f32>,
    /// Keys of the chunk, `n_head_kv * head_dim` per row.
    pub k: Slot<f32>,
    /// Values of the chunk, `n_head_kv * head_dim_v` per row.
    pub v: Slot<f32>,
    /// Attention output, `n_head * head_dim_v` per row.
    pub attn_out: Slot<f32>,
    /// Output of the attention output projection and of the FFN down projection, `n_embd` per row.
    pub proj_out: Slot<f32>,
    /// FFN gate projection (then the activation's output), `n_ff` per row.
    pub ffn_gate: Slot<f32>,
    /// FFN up projection, `n_ff` per row.
    pub ffn_up: Slot<f32>,
    /// Attention scores, `n_ctx` per thread.
    pub scores: Slot<f32>,
    /// A dequantized value row, `head_dim_v` per thread.
    pub value_row: Slot<f32>,
    /// (cos, sin) tables, `rope_dim / 2` per row for each distinct (base, scale) pair.
    pub rope: Slot<(f32, f32)>,
    /// Logits, `n_vocab` per row: row 0 those of the last token of a one-sequence pass, row `c`
    /// the `c`-th logits row of a batch.
    pub logits: Slot<f32>,
    /// Each row's sequence.
    pub row_seq: Slot<u32>,
    /// Each row's position in its sequence.
    pub row_pos: Slot<u32>,
    /// Each row's flags ([`ROW_LOGITS`], [`ROW_MULTI`]).
    pub row_flags: Slot<u8>,
    /// The staging ring of the streamed weights (a model under a RAM budget that streams).
    pub staging: Option<Slot<u8>>,
    /// The embedding rows of a chunk's tokens, read from the file (when the embedding matrix is
    /// not in RAM).
    pub embd_rows: Option<Slot<u8>>,
}

/// Row flag: the pass computes this row's logits.
pub(crate) const ROW_LOGITS: u8 = 1;
/// Row flag: the row's sequence has more than one row in the pass (its attention runs as a
/// prefill chunk's, as the same tokens alone in a pass would).
pub(crate) const ROW_MULTI: u8 = 2;

/// The RoPE settings of the layers: the distinct (base, scale) pairs, whose tables the session
/// fills once per chunk, and each layer's index into them.
#[derive(Debug, Clone)]
pub(crate) struct RopeTables {
    /// Distinct (frequency base, frequency scale) pairs.
    pub pairs: Vec<(f32, f32)>,
    /// Each layer's index into `pairs`.
    pub layer_pair: Vec<usize>,
}

/// Everything a session is made of, short of the allocation.
pub(crate) struct Layout {
    /// The settings, resolved.
    pub params: SessionParams,
    /// The arena's slots.
    pub plan: MemoryPlan,
    /// The forward pass's slots.
    pub buffers: Buffers,
    /// The KV cache's slots and geometry.
    pub kv: KvCache,
    /// The RoPE tables.
    pub ropes: RopeTables,
}

impl Layout {
    /// Validates `params` against the model and lays the arena out.
    pub(crate) fn new(model: &Model, params: SessionParams) -> Result<Layout> {
        let sp = &model.spec;
        let params = params.resolve(sp)?;
        let (rows, e, nt) = (params.n_batch, sp.n_embd, params.n_threads);
        let q_dim = sp.n_head * sp.head_dim;
        let kv_dim = sp.n_head_kv * sp.head_dim;
        let v_dim = sp.n_head_kv * sp.head_dim_v;
        let att_dim = sp.n_head * sp.head_dim_v;
        let max_in = e.max(sp.n_ff).max(att_dim);
        let mut pairs: Vec<(f32, f32)> = Vec::new();
        let layer_pair = sp
            .layers
            .iter()
            .map(|l| {
                let key = (l.rope_base, l.rope_scale);
                pairs.iter().position(|r| *r == key).unwrap_or_else(|| {
                    pairs.push(key);
                    pairs.len() - 1
                })
            })
            .collect();
        let mut plan = MemoryPlan::default();
        let buffers = Buffers {
            residual: plan.add("activations: residual", rows * e)?,
            normed: plan.add("activations: normed", rows * e)?,
            input_q8: plan.add("activations: 8-bit, per-32 scales", rows * max_in / 32)?,
            input_q8k: plan.add("activations: 8-bit, per-256 scales", rows * max_in / 32)?,
            q: plan.add("activations: q", rows * q_dim)?,
            k: plan.add("activations: k", rows * kv_dim)?,
            v: plan.add("activations: v", rows * v_dim)?,
            attn_out: plan.add("activations: attention out", rows * att_dim)?,
            proj_out: plan.add("activations: projection out", rows * e)?,
            ffn_gate: plan.add("activations: ffn gate", rows * sp.n_ff)?,
            ffn_up: plan.add("activations: ffn up", rows * sp.n_ff)?,
            scores: plan.add("scratch: attention scores (per thread)", nt * params.n_ctx)?,
            value_row: plan.add("scratch: value row (per thread)", nt * sp.head_dim_v)?,
            rope: plan.add("scratch: rope tables", pairs.len() * rows * sp.rope_dim / 2)?,
            logits: plan.add("logits", params.n_seq * sp.n_vocab)?,
            row_seq: plan.add("batch: row sequences", rows)?,
            row_pos: plan.add("batch: row positions", rows)?,
            row_flags: plan.add("batch: row flags", rows)?,
            staging: match model.residency() {
                Some(r) if r.ring > 0 => Some(plan.add_aligned(
                    "weight staging: streamed layers",
                    r.staging_bytes() as usize,
                    r.io_align.min(crate::residency::DIRECT_ALIGN) as usize,
                )?),
                _ => None,
            },
            embd_rows: match model.embd.placement {
                Placement::Ram { .. } => None,
                _ => Some(plan.add("embedding rows read from the file", rows * model.embd.row_bytes)?),
            },
        };
        let kv = KvCache::plan(&mut plan, sp, params.kv_type, params.n_ctx, params.n_seq)?;
        Ok(Layout {
            params,
            plan,
            buffers,
            kv,
            ropes: RopeTables { pairs, layer_pair },
        })
    }

    /// The session's whole memory plan (weights, arena, tables, stacks) with its budget resolved
    /// (`--ram-budget`, else the cgroup limit or `MemAvailable`) but not yet enforced.
    pub(crate) fn session_plan(&self, model: &Model) -> SessionPlan {
        let p = &self.params;
        let mut budget = match p.ram_budget {
            Some(b) => Some(Budget {
                bytes: b,
                source: "--ram-budget".into(),
            }),
            None => detect_ram_budget(),
        };
        let (model_tables, tokenizer) = model.heap_bytes();
        let weights = model.ram_weight_bytes();
        // Under an address-space limit what the session adds must fit in the room left; the
        // model (weights and tables) is already mapped, so it counts as in place.
        if let Some(room) = address_space_room() {
            let bytes = room.saturating_sub(ADDRESS_SPACE_MARGIN) + weights + (model_tables + tokenizer) as u64;
            if budget.as_ref().is_none_or(|b| bytes < b.bytes) {
                budget = Some(Budget {
                    bytes,
                    source: format!(
                        "address-space limit (ulimit -v): {:.1} MiB left to map",
                        room as f64 / 1048576.0
                    ),
                });
            }
        }
        let arena = Arena::size_for(&self.plan);
        SessionPlan {
            n_ctx: p.n_ctx,
            n_batch: p.n_batch,
            n_seq: p.n_seq,
            n_threads: p.n_threads,
            kv_type: p.kv_type,
            weights,
            lock: p.mlock,
            arena: self.plan.clone(),
            arena_bytes: if p.huge_pages {
                arena.next_multiple_of(2 << 20)
            } else {
                arena
            } as u64,
            kv_bytes_per_pos: self.kv.bytes_per_position() as u64,
            model_tables: model_tables as u64,
            tokenizer: tokenizer as u64,
            sampler: (p.n_seq * crate::sampler::Sampler::planned_bytes(model.spec.n_vocab, 1 << 10)) as u64,
            thread_stacks: ((p.n_threads - 1) * WORKER_STACK) as u64,
            budget,
        }
    }
}
