//! Q8_0 weights times f32 activations on x86 (tandem patch, vendor/PATCHES.md).
//!
//! The activations are quantized once per call to 32-value blocks, then the product is computed
//! in register tiles of `RM` weight rows by `RN` activation rows, so each weight block loaded is
//! used `RN` times and each activation block `RM` times (llamafile's tinyBLAS scheme, the one
//! llama.cpp uses for prompt batches). The weights stay in the GGUF block layout: no repacked
//! copy is kept. The dot product of two blocks uses the sign trick, `|w|` (u8) times
//! `sign(a, w)` (i8), on AVX-512 VNNI, AVX-VNNI or plain AVX2.
//!
//! Every output element is computed the same way whatever `m` is (blocks in order, eight lanes,
//! one horizontal sum at the end), so a row's result does not depend on the other rows in the
//! batch: batched decoding gives the same logits as decoding one sequence at a time.

use super::k_quants::{BlockQ8_0, QK8_0};
use core::arch::x86_64::*;

/// One activation block: 32 quantized values and their scale (kept in f32, unlike the f16 of
/// `BlockQ8_0`, since activations are quantized afresh on every call).
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct ActQ8 {
    qs: [i8; QK8_0],
    d: f32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Avx512Vnni,
    AvxVnni,
    Avx2,
}

fn level() -> Option<Level> {
    use std::sync::OnceLock;
    static LEVEL: OnceLock<Option<Level>> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        if std::env::var("CANDLE_Q8_0_FORCE_AVX2").as_deref() == Ok("1") {
            return Some(Level::Avx2);
        }
        if is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
        {
            Some(Level::Avx512Vnni)
        } else if is_x86_feature_detected!("avxvnni") {
            Some(Level::AvxVnni)
        } else {
            Some(Level::Avx2)
        }
    })
}

/// Whether this path serves Q8_0 matmuls on this CPU.
pub(crate) fn available() -> bool {
    level().is_some()
}

/// Quantizes one row of `k` f32 values (k a multiple of 32) into `out`.
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row(x: &[f32], out: &mut [ActQ8]) {
    let sign_mask = _mm256_set1_ps(-0.0);
    for (b, blk) in out.iter_mut().enumerate() {
        let p = x.as_ptr().add(b * QK8_0);
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let mut amax = _mm256_andnot_ps(sign_mask, v[0]);
        for vi in &v[1..] {
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_mask, *vi));
        }
        let hi = _mm256_extractf128_ps(amax, 1);
        let m4 = _mm_max_ps(_mm256_castps256_ps128(amax), hi);
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
        let max = _mm_cvtss_f32(m1);
        let d = max / 127.0;
        let id = if max != 0.0 { 127.0 / max } else { 0.0 };
        let idv = _mm256_set1_ps(id);
        // Round half away from zero, like the scalar quantizer and llama.cpp.
        let q: [__m256i; 4] = core::array::from_fn(|i| {
            _mm256_cvtps_epi32(_mm256_round_ps(
                _mm256_mul_ps(v[i], idv),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            ))
        });
        let q01 = _mm256_packs_epi32(q[0], q[1]);
        let q23 = _mm256_packs_epi32(q[2], q[3]);
        let q8 = _mm256_packs_epi16(q01, q23);
        // The two packs interleave 128-bit lanes; put the 32 values back in order.
        let q8 = _mm256_permutevar8x32_epi32(q8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(blk.qs.as_mut_ptr() as *mut __m256i, q8);
        blk.d = d;
    }
}

macro_rules! tile_kernels {
    ($modname:ident, $features:literal, $dot:ident) => {
        mod $modname {
            use super::*;

            /// `sum(w * a)` over one block, as eight i32 lanes.
            #[inline(always)]
            unsafe fn block_dot(w: __m256i, a: __m256i) -> __m256i {
                let aw = _mm256_sign_epi8(w, w);
                let sa = _mm256_sign_epi8(a, w);
                $dot(aw, sa)
            }

            /// One `RM x RN` tile: weight rows `w[i]` (each `kb` blocks) against activation rows
            /// `a[j]`, written to `dst[j * ldd + i]`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn tile<const RM: usize, const RN: usize>(
                w: [*const BlockQ8_0; RM],
                a: [*const ActQ8; RN],
                kb: usize,
                dst: *mut f32,
                ldd: usize,
            ) {
                let mut acc = [[_mm256_setzero_ps(); RN]; RM];
                for b in 0..kb {
                    let mut wq = [_mm256_setzero_si256(); RM];
                    let mut wd = [_mm256_setzero_ps(); RM];
                    for i in 0..RM {
                        let blk = &*w[i].add(b);
                        wq[i] = _mm256_loadu_si256(blk.qs.as_ptr() as *const __m256i);
                        wd[i] = _mm256_set1_ps(blk.d.to_f32());
                    }
                    for j in 0..RN {
                        let blk = &*a[j].add(b);
                        let aq = _mm256_loadu_si256(blk.qs.as_ptr() as *const __m256i);
                        let ad = _mm256_set1_ps(blk.d);
                        for i in 0..RM {
                            let dot = _mm256_cvtepi32_ps(block_dot(wq[i], aq));
                            acc[i][j] = _mm256_fmadd_ps(dot, _mm256_mul_ps(wd[i], ad), acc[i][j]);
                        }
                    }
                }
                for i in 0..RM {
                    for j in 0..RN {
                        *dst.add(j * ldd + i) = hsum(acc[i][j]);
                    }
                }
            }

            #[inline(always)]
            unsafe fn hsum(v: __m256) -> f32 {
                let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let s = _mm_add_ss(s, _mm_movehdup_ps(s));
                _mm_cvtss_f32(s)
            }
        }
    };
}

#[inline(always)]
unsafe fn dot_avx2(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

#[inline(always)]
unsafe fn dot_avxvnni(u: __m256i, s: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, s)
}

tile_kernels!(k_avx2, "avx2,fma,f16c", dot_avx2);
tile_kernels!(k_avxvnni, "avx2,fma,f16c,avxvnni", dot_avxvnni);

/// AVX-512 VNNI: two blocks per 512-bit register, so each instruction does twice the work of
/// the 256-bit kernels. An odd last block is finished with the 256-bit VNNI step.
mod k_zmm {
    use super::*;

    #[inline(always)]
    unsafe fn pair(p0: *const i8, p1: *const i8) -> __m512i {
        let lo = _mm256_loadu_si256(p0 as *const __m256i);
        let hi = _mm256_loadu_si256(p1 as *const __m256i);
        _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1)
    }

    #[inline(always)]
    unsafe fn pair_scale(d0: f32, d1: f32) -> __m512 {
        _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1)
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512bw,avx512dq,avx512vnni")]
    pub(super) unsafe fn tile<const RM: usize, const RN: usize>(
        w: [*const BlockQ8_0; RM],
        a: [*const ActQ8; RN],
        kb: usize,
        dst: *mut f32,
        ldd: usize,
    ) {
        let zero = _mm512_setzero_si512();
        let bias = _mm512_set1_epi8(-128);
        let mut acc = [[_mm512_setzero_ps(); RN]; RM];
        let mut b = 0;
        while b + 2 <= kb {
            // w + 128 as unsigned bytes: dpbusd then sums (w + 128) * a, and starting each sum
            // from -128 * a (per lane) leaves exactly w * a.
            let mut wu = [zero; RM];
            let mut wd = [_mm512_setzero_ps(); RM];
            for i in 0..RM {
                if RN == 1 {
                    _mm_prefetch::<_MM_HINT_T0>(w[i].wrapping_add(b + PREFETCH_BLOCKS) as *const i8);
                }
                let (b0, b1) = (&*w[i].add(b), &*w[i].add(b + 1));
                wu[i] = _mm512_xor_si512(pair(b0.qs.as_ptr(), b1.qs.as_ptr()), bias);
                wd[i] = pair_scale(b0.d.to_f32(), b1.d.to_f32());
            }
            for j in 0..RN {
                let (a0, a1) = (&*a[j].add(b), &*a[j].add(b + 1));
                let aq = pair(a0.qs.as_ptr(), a1.qs.as_ptr());
                let ad = pair_scale(a0.d, a1.d);
                let start = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, aq));
                for i in 0..RM {
                    let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, wu[i], aq));
                    acc[i][j] = _mm512_fmadd_ps(dot, _mm512_mul_ps(wd[i], ad), acc[i][j]);
                }
            }
            b += 2;
        }
        let mut tail = [[_mm256_setzero_ps(); RN]; RM];
        if b < kb {
            for i in 0..RM {
                let wb = &*w[i].add(b);
                let wq = _mm256_loadu_si256(wb.qs.as_ptr() as *const __m256i);
                let wd = _mm256_set1_ps(wb.d.to_f32());
                for j in 0..RN {
                    let ab = &*a[j].add(b);
                    let aq = _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i);
                    let dot = _mm256_dpbusd_epi32(
                        _mm256_setzero_si256(),
                        _mm256_sign_epi8(wq, wq),
                        _mm256_sign_epi8(aq, wq),
                    );
                    let s = _mm256_mul_ps(wd, _mm256_set1_ps(ab.d));
                    tail[i][j] = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), s);
                }
            }
        }
        for i in 0..RM {
            for j in 0..RN {
                let v = acc[i][j];
                let v8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
                *dst.add(j * ldd + i) = hsum8(_mm256_add_ps(v8, tail[i][j]));
            }
        }
    }

    #[inline(always)]
    unsafe fn hsum8(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// How far ahead, in blocks of a weight row, the single-row (decode) tile asks for its weights.
/// Decode streams every weight once per token; on its own the hardware prefetcher kept the
/// AVX-512 kernel at ~10 GB/s of the ~33 GB/s two threads can read here. Eight blocks (272
/// bytes) measured best of 4, 8, 12 and 24: 13.1 against 10.4 GB/s, medians of 5 paired runs
/// of `decode_bandwidth` (tandem patch).
const PREFETCH_BLOCKS: usize = 8;

/// Weight rows per tile. Activation rows per tile are `RN` for prompt batches; a single row
/// (decoding) uses the `RM x 1` tile.
const RM: usize = 4;
const RN: usize = 4;

#[allow(clippy::too_many_arguments)]
unsafe fn run_tile(
    lv: Level,
    rm: usize,
    rn: usize,
    w: *const BlockQ8_0,
    a: *const ActQ8,
    kb: usize,
    dst: *mut f32,
    ldd: usize,
) {
    macro_rules! dispatch {
        ($($m:literal),*; $($n:literal),*) => {
            dispatch!(@m [$($m),*] [$($n),*])
        };
        (@m [$($m:literal),*] $ns:tt) => {
            match rm {
                $( $m => dispatch!(@n $m $ns), )*
                _ => unreachable!("tile rows {rm}"),
            }
        };
        (@n $m:literal [$($n:literal),*]) => {
            match rn {
                $( $n => {
                    let wr: [*const BlockQ8_0; $m] = core::array::from_fn(|i| w.add(i * kb));
                    let ar: [*const ActQ8; $n] = core::array::from_fn(|j| a.add(j * kb));
                    match lv {
                        Level::Avx512Vnni => k_zmm::tile::<$m, $n>(wr, ar, kb, dst, ldd),
                        Level::AvxVnni => k_avxvnni::tile::<$m, $n>(wr, ar, kb, dst, ldd),
                        Level::Avx2 => k_avx2::tile::<$m, $n>(wr, ar, kb, dst, ldd),
                    }
                } )*
                _ => unreachable!("tile cols {rn}"),
            }
        };
    }
    dispatch!(1, 2, 3, 4; 1, 2, 3, 4)
}

thread_local! {
    static ACT_SCRATCH: std::cell::RefCell<Vec<ActQ8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `dst[m x n] = lhs[m x k] * rhs_t[n x k]^T` for Q8_0 `rhs_t`. `k` must be a multiple of 32.
pub(crate) fn matmul(
    (m, k, n): (usize, usize, usize),
    lhs: &[f32],
    rhs_t: &[BlockQ8_0],
    dst: &mut [f32],
) -> crate::Result<()> {
    matmul_shared_lhs((m, k), lhs, &mut [(rhs_t, n, dst)])
}

/// [`matmul`] for several weights that share one `lhs` (q, k and v; gate and up): the
/// activations are quantized once and all products run in one parallel region, which saves a
/// quantization and a barrier per extra weight on every decode step. Each output is computed
/// exactly as [`matmul`] computes it alone.
pub(crate) fn matmul_shared_lhs(
    (m, k): (usize, usize),
    lhs: &[f32],
    parts: &mut [(&[BlockQ8_0], usize, &mut [f32])],
) -> crate::Result<()> {
    let lv = level().expect("q8_0_x86::matmul without AVX2");
    if !k.is_multiple_of(QK8_0) {
        crate::bail!("q8_0 matmul: k = {k} is not a multiple of {QK8_0}");
    }
    let kb = k / QK8_0;
    assert_eq!(lhs.len(), m * k, "q8_0 matmul: lhs is not {m}x{k}");
    for (rhs_t, n, dst) in parts.iter() {
        assert_eq!(rhs_t.len(), n * kb, "q8_0 matmul: rhs is not {n}x{k}");
        assert!(dst.len() >= m * n, "q8_0 matmul: dst too small");
    }
    // Work units: a block of weight rows against every activation row. Weight-row blocks
    // are the parallel axis so that each thread streams its own part of the weights.
    let rows_per_unit = if m == 1 { 4 * RM } else { RM };
    // (weights, rows, dst, first unit) per part, as addresses the workers can share.
    let mut first = 0;
    let table: Vec<(usize, usize, usize, usize)> = parts
        .iter_mut()
        .map(|(rhs_t, n, dst)| {
            let row = (
                rhs_t.as_ptr() as usize,
                *n,
                dst.as_mut_ptr() as usize,
                first,
            );
            first += n.div_ceil(rows_per_unit);
            row
        })
        .collect();
    let units = first;
    let pool = crate::utils::barrier_pool();
    ACT_SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < m * kb {
            scratch.resize(
                m * kb,
                ActQ8 {
                    qs: [0; QK8_0],
                    d: 0.0,
                },
            );
        }
        let act_ptr = scratch.as_mut_ptr() as usize;
        let quantize = |rows: std::ops::Range<usize>| {
            for r in rows {
                let out = unsafe {
                    std::slice::from_raw_parts_mut((act_ptr as *mut ActQ8).add(r * kb), kb)
                };
                unsafe { quantize_row(&lhs[r * k..(r + 1) * k], out) };
            }
        };
        if m == 1 {
            quantize(0..1);
        } else {
            pool.execute_chunked(m, quantize);
        }

        pool.execute_chunked(units, |range| {
            let a = act_ptr as *const ActQ8;
            for unit in range {
                let part = table.partition_point(|row| row.3 <= unit) - 1;
                let (w_ptr, n, dst_ptr, part_first) = table[part];
                let (w, dst) = (w_ptr as *const BlockQ8_0, dst_ptr as *mut f32);
                let local = unit - part_first;
                let r_end = n.min((local + 1) * rows_per_unit);
                let mut r0 = local * rows_per_unit;
                while r0 < r_end {
                    let rm = RM.min(r_end - r0);
                    let mut c0 = 0;
                    while c0 < m {
                        let rn = RN.min(m - c0);
                        // SAFETY: every (row, column) of each dst belongs to exactly one tile.
                        unsafe {
                            run_tile(
                                lv,
                                rm,
                                rn,
                                w.add(r0 * kb),
                                a.add(c0 * kb),
                                kb,
                                dst.add(c0 * n + r0),
                                n,
                            )
                        };
                        c0 += rn;
                    }
                    r0 += rm;
                }
            }
        });
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantized::k_quants::GgmlType;

    fn weights(n: usize, k: usize, seed: u32) -> Vec<BlockQ8_0> {
        let xs: Vec<f32> = (0..n * k)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0)
                    - 0.5
            })
            .collect();
        let mut ws = vec![BlockQ8_0::zeros(); n * k / QK8_0];
        BlockQ8_0::from_float(&xs, &mut ws);
        ws
    }

    #[test]
    #[ignore = "a measurement: cargo test --release q8_0_x86 -- --ignored --nocapture"]
    fn decode_bandwidth() {
        // six 49,152 x 576 Q8_0 matrices: ~180 MB, far past any cache, as decode reads them
        const N: usize = 49152;
        let k = 576;
        let mats: Vec<Vec<BlockQ8_0>> = (0..6).map(|i| weights(N, k, i)).collect();
        let lhs: Vec<f32> = (0..k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let bytes: usize = mats
            .iter()
            .map(|w| std::mem::size_of_val(w.as_slice()))
            .sum();
        let mut dst = vec![0f32; N];
        let mut times = vec![];
        for _ in 0..15 {
            let t = std::time::Instant::now();
            for w in &mats {
                // in 8 parts, as a layer's products are split across the pool
                let rows = N / 8;
                for part in w.chunks(rows * k / QK8_0) {
                    matmul((1, k, rows), &lhs, part, &mut dst).unwrap();
                }
            }
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(|a, b| a.total_cmp(b));
        let med = times[times.len() / 2];
        println!(
            "decode GEMV: {:.2} GB/s (median of 15, {} MB, 48 products)",
            bytes as f64 / med / 1e9,
            bytes / 1_000_000
        );
    }

    #[test]
    fn shared_lhs_gives_each_product_exactly_as_alone() -> crate::Result<()> {
        if !available() {
            return Ok(());
        }
        let k = 576;
        for m in [1, 5] {
            let lhs: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let shapes = [576, 192, 192];
            let ws: Vec<Vec<BlockQ8_0>> = shapes
                .iter()
                .enumerate()
                .map(|(i, &n)| weights(n, k, i as u32))
                .collect();
            let alone: Vec<Vec<f32>> = ws
                .iter()
                .zip(shapes)
                .map(|(w, n)| {
                    let mut dst = vec![0f32; m * n];
                    matmul((m, k, n), &lhs, w, &mut dst).map(|_| dst)
                })
                .collect::<crate::Result<_>>()?;
            let mut dsts: Vec<Vec<f32>> = shapes.iter().map(|&n| vec![0f32; m * n]).collect();
            let mut parts: Vec<(&[BlockQ8_0], usize, &mut [f32])> = ws
                .iter()
                .zip(shapes)
                .zip(dsts.iter_mut())
                .map(|((w, n), d)| (w.as_slice(), n, d.as_mut_slice()))
                .collect();
            matmul_shared_lhs((m, k), &lhs, &mut parts)?;
            assert_eq!(dsts, alone, "m = {m}");
        }
        Ok(())
    }
}
