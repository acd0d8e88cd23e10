//! AdamW over the trainable tensors (as `torch.optim.AdamW`), the cosine learning-rate
//! schedule with linear warmup, and gradient clipping by global norm.
//!
//! [`AdamW::step_clipped`] packs the trainable tensors into one flat buffer per
//! weight-decay group on its first call (each parameter, and its moments, becomes a view of
//! its group's buffer), so clipping and the update take a handful of kernels per group
//! instead of several per tensor — what `torch.optim.AdamW`'s multi-tensor path buys on a GPU.

use std::f64::consts::PI;

use tch::Tensor;

use super::params::Param;

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (applied to decay-group tensors only).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW state: first and second moments per trainable tensor, plus one scratch tensor
/// each, so a step allocates nothing.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    /// Updates taken so far.
    pub t: u64,
    /// The trainable tensors (shallow clones), for allocating their state.
    like: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Per-tensor scratch (undefined once the tensor is packed into a [`Flat`] group).
    scratch: Vec<Tensor>,
    /// The packed groups, from the first [`AdamW::step_clipped`] on.
    flat: Option<Vec<Flat>>,
}

/// Trainable tensors of one weight-decay group packed into contiguous buffers: the
/// parameters and their moments are views of `w`, `m` and `v`.
#[derive(Debug)]
struct Flat {
    /// Indices of the packed tensors among the trainable ones, in order.
    members: Vec<usize>,
    decay: bool,
    w: Tensor,
    m: Tensor,
    v: Tensor,
    scratch: Tensor,
}

/// The step's coefficients: `m / (√v/√bc2 + ε) = √bc2 · m / (√v + ε√bc2)`.
#[derive(Debug, Clone, Copy)]
struct Coeffs {
    beta1: f64,
    beta2: f64,
    step_size: f64,
    eps: f64,
    decay_factor: f64,
}

/// One in-place AdamW update of `w` from `g` with moments `m`, `v` and scratch `buf`.
fn update(
    w: &Tensor,
    g: &Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    buf: &mut Tensor,
    decay: bool,
    k: Coeffs,
) {
    let mut w = w.shallow_clone();
    if decay && k.decay_factor != 1.0 {
        let _ = w.g_mul_scalar_(k.decay_factor);
    }
    let _ = m.lerp_(g, 1.0 - k.beta1);
    let _ = g.mul_out(buf, g);
    let _ = v.lerp_(buf, 1.0 - k.beta2);
    let _ = v.sqrt_out(buf);
    let _ = buf.g_add_scalar_(k.eps);
    let _ = m.div_out(buf, buf);
    let _ = buf.g_mul_scalar_(-k.step_size);
    let _ = w.g_add_(buf);
}

/// Packs `tensors` into one new contiguous buffer and points each at its slice (the
/// autograd identity of a parameter is kept: `set_data`, as `p.data = …`).
fn pack(tensors: &mut [Tensor]) -> Tensor {
    let _guard = tch::no_grad_guard();
    let flat = Tensor::cat(
        &tensors.iter().map(|t| t.reshape([-1])).collect::<Vec<_>>(),
        0,
    );
    let mut offset = 0;
    for t in tensors.iter_mut() {
        let n = t.numel() as i64;
        let view = flat.narrow(0, offset, n).view(t.size().as_slice());
        t.set_data(&view);
        offset += n;
    }
    flat
}

impl AdamW {
    /// Zero moments for `params` (the trainable tensors, in a fixed order). The state is
    /// allocated when first needed: flat at the first [`AdamW::step_clipped`], per tensor
    /// by [`AdamW::step`] or [`AdamW::restore`].
    pub fn new(cfg: AdamWConfig, params: &[&Param]) -> Self {
        let undefined = || params.iter().map(|_| Tensor::new()).collect();
        Self {
            cfg,
            t: 0,
            like: params.iter().map(|p| p.tensor.shallow_clone()).collect(),
            m: undefined(),
            v: undefined(),
            scratch: undefined(),
            flat: None,
        }
    }

    /// Allocates the zero moments of tensor `i` that are not allocated yet.
    fn ensure_moments(&mut self, i: usize) {
        for t in [&mut self.m[i], &mut self.v[i]] {
            if !t.defined() {
                *t = self.like[i].zeros_like();
            }
        }
    }

    /// Allocates the zero moments and scratch of tensor `i` that are not allocated yet.
    fn ensure(&mut self, i: usize) {
        self.ensure_moments(i);
        if !self.scratch[i].defined() {
            self.scratch[i] = self.like[i].zeros_like();
        }
    }

    /// First and second moments, in the order of the trainable tensors (all allocated after
    /// a step or a restore).
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Restores saved moments and the update count (shapes must match).
    pub fn restore(&mut self, t: u64, m: &[Tensor], v: &[Tensor]) -> Result<(), String> {
        if m.len() != self.m.len() || v.len() != self.v.len() {
            return Err(format!(
                "{} moment tensors saved, {} trainable tensors now",
                m.len(),
                self.m.len()
            ));
        }
        let _guard = tch::no_grad_guard();
        for i in 0..self.like.len() {
            self.ensure(i);
        }
        for (dst, src) in self.m.iter_mut().chain(&mut self.v).zip(m.iter().chain(v)) {
            if dst.size() != src.size() {
                return Err(format!(
                    "moment of shape {:?} saved, {:?} expected",
                    src.size(),
                    dst.size()
                ));
            }
            dst.copy_(src);
        }
        self.t = t;
        Ok(())
    }

    fn coeffs(&self, lr: f64) -> Coeffs {
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.t as i32)).sqrt();
        Coeffs {
            beta1: c.beta1,
            beta2: c.beta2,
            step_size: lr / bc1 * bc2_sqrt,
            eps: c.eps * bc2_sqrt,
            decay_factor: 1.0 - lr * c.weight_decay,
        }
    }

    /// One update with learning rate `lr` from `grads` (one per tensor of `params`, in the
    /// same order; undefined ones leave their tensor alone), as `torch.optim.AdamW`:
    /// `w ← w(1 − lr·λ) − lr/(1−β₁ᵗ) · m / (√(v/(1−β₂ᵗ)) + ε)`, tensor by tensor. Every
    /// operation is in place on the parameters, moments and scratch tensors.
    pub fn step(&mut self, params: &[&Param], grads: &[Tensor], lr: f64) {
        let _guard = tch::no_grad_guard();
        if self.t == 0 {
            // Every tensor has moments to save from the first step on, gradient or not.
            for i in 0..self.like.len() {
                self.ensure_moments(i);
            }
        }
        self.t += 1;
        let k = self.coeffs(lr);
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            if g.defined() {
                self.ensure(i);
                let (m, v, buf) = (&mut self.m[i], &mut self.v[i], &mut self.scratch[i]);
                update(&p.tensor, g, m, v, buf, p.decay, k);
            }
        }
    }

    /// Clips `grads` to the global norm `max_norm` (0: no clipping) and takes one update:
    /// on flat buffers ([`AdamW::step_clipped`]) when `flat`, else tensor by tensor
    /// ([`clip_grad_norm`] then [`AdamW::step`], skipped when the norm is not finite).
    /// Returns the norm before clipping.
    pub fn clip_and_step(
        &mut self,
        params: &[&Param],
        mut grads: Vec<Tensor>,
        lr: f64,
        max_norm: f64,
        flat: bool,
    ) -> f64 {
        if flat {
            return self.step_clipped(params, grads, lr, max_norm);
        }
        let norm = clip_grad_norm(&mut grads, max_norm);
        if norm.is_finite() {
            self.step(params, &grads, lr);
        }
        norm
    }

    /// Clips `grads` to the global norm `max_norm` (0: no clipping) and takes one update,
    /// as [`clip_grad_norm`] then [`AdamW::step`] do, on flat buffers: on the first call the
    /// tensors with a gradient are packed per weight-decay group (those without one stay
    /// apart and are skipped, as `torch.optim.AdamW` skips them). A packed tensor without a
    /// gradient in a later step counts as a zero gradient. Returns the norm before clipping;
    /// the parameters are untouched when it is not finite.
    pub fn step_clipped(
        &mut self,
        params: &[&Param],
        grads: Vec<Tensor>,
        lr: f64,
        max_norm: f64,
    ) -> f64 {
        let _guard = tch::no_grad_guard();
        if self.flat.is_none() {
            self.flat = Some(self.pack(params, &grads));
        }
        let groups = self.flat.as_mut().expect("packed above");
        let mut packed = vec![false; grads.len()];
        let mut flat_grads: Vec<Tensor> = Vec::with_capacity(groups.len());
        for g in groups.iter() {
            let parts: Vec<Tensor> = g
                .members
                .iter()
                .map(|&i| {
                    packed[i] = true;
                    if grads[i].defined() {
                        grads[i].reshape([-1])
                    } else {
                        params[i].tensor.zeros_like().reshape([-1])
                    }
                })
                .collect();
            flat_grads.push(Tensor::cat(&parts, 0));
        }
        let mut rest: Vec<(usize, Tensor)> = grads
            .into_iter()
            .enumerate()
            .filter(|(i, g)| !packed[*i] && g.defined())
            .collect();
        let sq: Vec<Tensor> = flat_grads
            .iter()
            .chain(rest.iter().map(|(_, g)| g))
            .map(|g| g.square().sum(tch::Kind::Float))
            .collect();
        if sq.is_empty() {
            return 0.0;
        }
        let norm = Tensor::stack(&sq, 0)
            .sum(tch::Kind::Float)
            .sqrt()
            .double_value(&[]);
        if !norm.is_finite() {
            return norm;
        }
        if max_norm > 0.0 && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for g in flat_grads.iter_mut().chain(rest.iter_mut().map(|(_, g)| g)) {
                let _ = g.g_mul_scalar_(scale);
            }
        }
        self.t += 1;
        let k = self.coeffs(lr);
        for (g, grad) in self
            .flat
            .as_mut()
            .expect("packed above")
            .iter_mut()
            .zip(&flat_grads)
        {
            update(&g.w, grad, &mut g.m, &mut g.v, &mut g.scratch, g.decay, k);
        }
        for (i, grad) in &rest {
            self.ensure(*i);
            let (m, v, buf) = (&mut self.m[*i], &mut self.v[*i], &mut self.scratch[*i]);
            update(&params[*i].tensor, grad, m, v, buf, params[*i].decay, k);
        }
        norm
    }

    /// Packs the tensors that have a gradient into one [`Flat`] group per weight-decay
    /// setting (the moments move along, so [`AdamW::moments`] and [`AdamW::restore`] keep
    /// working on their views); their per-tensor scratch is freed.
    fn pack(&mut self, params: &[&Param], grads: &[Tensor]) -> Vec<Flat> {
        let mut groups = Vec::new();
        // Tensors left apart keep per-tensor moments (saved with checkpoints even when
        // they never get a gradient).
        for i in (0..params.len()).filter(|&i| !grads[i].defined()) {
            self.ensure_moments(i);
        }
        for decay in [true, false] {
            let members: Vec<usize> = (0..params.len())
                .filter(|&i| grads[i].defined() && params[i].decay == decay)
                .collect();
            if members.is_empty() {
                continue;
            }
            // Shallow clones share the tensor object with the model's layers, so pointing
            // them at the buffer moves every holder.
            let w = pack(
                &mut members
                    .iter()
                    .map(|&i| params[i].tensor.shallow_clone())
                    .collect::<Vec<_>>(),
            );
            let restored = members.iter().any(|&i| self.m[i].defined());
            let state = |all: &mut [Tensor]| {
                if restored {
                    let mut ts: Vec<Tensor> =
                        members.iter().map(|&i| all[i].shallow_clone()).collect();
                    pack(&mut ts)
                } else {
                    let flat = w.zeros_like();
                    let mut offset = 0;
                    for &i in &members {
                        let n = params[i].tensor.numel() as i64;
                        all[i] = flat
                            .narrow(0, offset, n)
                            .view(params[i].tensor.size().as_slice());
                        offset += n;
                    }
                    flat
                }
            };
            let m = state(&mut self.m);
            let v = state(&mut self.v);
            for &i in &members {
                self.scratch[i] = Tensor::new();
            }
            let scratch = w.zeros_like();
            groups.push(Flat {
                members,
                decay,
                w,
                m,
                v,
                scratch,
            });
        }
        groups
    }
}

/// Global L2 norm of `grads` (undefined ones skipped); when above `max_norm` (> 0), scales
/// them down in place to it (as `torch.nn.utils.clip_grad_norm_`). The per-tensor norms
/// stay on the device: one synchronisation reads the total. Returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> f64 {
    let _guard = tch::no_grad_guard();
    let norms: Vec<Tensor> = grads
        .iter()
        .filter(|g| g.defined())
        .map(|g| g.norm())
        .collect();
    if norms.is_empty() {
        return 0.0;
    }
    let norm = Tensor::stack(&norms, 0).norm().double_value(&[]);
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().filter(|g| g.defined()) {
            let _ = g.g_mul_scalar_(scale);
        }
    }
    norm
}

/// Cosine decay to zero after a linear warmup over `ceil(warmup_ratio · total)` steps.
#[derive(Debug, Clone, Copy)]
pub struct CosineSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warmup steps.
    pub warmup: usize,
    /// Total optimizer steps.
    pub total: usize,
}

impl CosineSchedule {
    /// The schedule for `total` steps with `warmup_ratio` of them warming up.
    pub fn new(peak: f64, total: usize, warmup_ratio: f64) -> Self {
        Self {
            peak,
            warmup: (warmup_ratio * total as f64).ceil() as usize,
            total,
        }
    }

    /// Learning rate of optimizer step `step` (0-based): `peak·(step+1)/warmup` while warming
    /// up (so the first step already moves), then `peak·½(1+cos(π·progress))`.
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        self.peak * 0.5 * (1.0 + (PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::super::params::Group;
    use super::*;
    use tch::Kind;

    fn param(key: &str, values: &[f32], shape: &[i64], decay: bool) -> Param {
        Param {
            key: key.into(),
            tensor: Tensor::from_slice(values).view(shape),
            group: Group::Llm,
            trainable: true,
            decay,
        }
    }

    fn floats(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    /// Clipping then two AdamW steps against the formulas evaluated in f64 by hand.
    #[test]
    fn clipping_and_adamw_match_the_formula() {
        let w0: [&[f64]; 2] = [&[0.5, -1.0, 2.0, 0.25], &[1.5, -0.5]];
        let g0: [&[f64]; 2] = [&[3.0, -4.0, 0.0, 12.0], &[-5.0, 0.5]];
        let f32s = |r: &[f64]| r.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let params = [
            param("w.weight", &f32s(w0[0]), &[2, 2], true),
            param("w.bias", &f32s(w0[1]), &[2], false),
        ];
        let refs: Vec<&Param> = params.iter().collect();
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-3,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(cfg, &refs);
        let (lr, max_norm) = (0.01, 2.0);
        // Expected, in f64.
        let total: f64 = g0
            .iter()
            .copied()
            .flatten()
            .map(|g| g * g)
            .sum::<f64>()
            .sqrt();
        let scale = max_norm / (total + 1e-6);
        let mut w: Vec<Vec<f64>> = w0.iter().map(|r| r.to_vec()).collect();
        let mut m: Vec<Vec<f64>> = w0.iter().map(|r| vec![0.0; r.len()]).collect();
        let mut v = m.clone();
        for t in 1..=2 {
            let mut grads: Vec<Tensor> = g0.iter().map(|r| Tensor::from_slice(&f32s(r))).collect();
            let norm = clip_grad_norm(&mut grads, max_norm);
            assert!((norm - total).abs() < 1e-4, "{norm} vs {total}");
            for (got, r) in grads.iter().zip(&g0) {
                for (a, b) in floats(got).iter().zip(r.iter()) {
                    assert!((a - b * scale).abs() < 1e-6, "clipped {a} vs {}", b * scale);
                }
            }
            let grads: Vec<Tensor> = grads
                .iter()
                .zip(&params)
                .map(|(g, p)| g.view(p.tensor.size().as_slice()))
                .collect();
            opt.step(&refs, &grads, lr);
            let (bc1, bc2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.99f64.powi(t));
            for (i, p) in params.iter().enumerate() {
                let state = m[i].iter_mut().zip(v[i].iter_mut());
                for ((w, g), (m, v)) in w[i].iter_mut().zip(g0[i]).zip(state) {
                    let g = g * scale;
                    *m = 0.9 * *m + 0.1 * g;
                    *v = 0.99 * *v + 0.01 * g * g;
                    if p.decay {
                        *w *= 1.0 - lr * 0.1;
                    }
                    *w -= lr / bc1 * *m / ((*v / bc2).sqrt() + 1e-3);
                }
                for (a, b) in floats(&p.tensor).iter().zip(&w[i]) {
                    assert!((a - b).abs() < 1e-6, "step {t}, {}: {a} vs {b}", p.key);
                }
            }
        }
        let (m_t, v_t) = opt.moments();
        for (a, b) in floats(&m_t[0]).iter().zip(&m[0]) {
            assert!((a - b).abs() < 1e-6);
        }
        for (a, b) in floats(&v_t[1]).iter().zip(&v[1]) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    /// The flat path takes the same steps as clipping then stepping tensor by tensor, keeps
    /// a tensor without a gradient at its first step apart (and untouched until it gets
    /// one), and leaves the parameters and moments as views the holders still see.
    #[test]
    fn the_flat_step_equals_the_per_tensor_step() {
        let shapes: [&[i64]; 4] = [&[3, 2], &[2], &[4], &[2, 2]];
        let decays = [true, false, true, false];
        let make = || -> Vec<Param> {
            shapes
                .iter()
                .zip(decays)
                .enumerate()
                .map(|(i, (s, d))| {
                    let n: i64 = s.iter().product();
                    let vals: Vec<f32> = (0..n)
                        .map(|j| ((i as i64 * 7 + j) % 5) as f32 - 1.5)
                        .collect();
                    param(&format!("p{i}"), &vals, s, d)
                })
                .collect()
        };
        let (a, b) = (make(), make());
        let (ra, rb): (Vec<&Param>, Vec<&Param>) = (a.iter().collect(), b.iter().collect());
        let cfg = AdamWConfig {
            weight_decay: 0.05,
            ..Default::default()
        };
        let (mut per, mut flat) = (AdamW::new(cfg, &ra), AdamW::new(cfg, &rb));
        let holder = b[0].tensor.shallow_clone(); // as a model layer holds it
        for step in 0..4 {
            let grads = |ps: &[Param]| -> Vec<Tensor> {
                ps.iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if step == 0 && i == 2 {
                            Tensor::new()
                        } else {
                            p.tensor.ones_like() * (3.0 - i as f64 + step as f64)
                        }
                    })
                    .collect()
            };
            let mut ga = grads(&a);
            let na = clip_grad_norm(&mut ga, 2.0);
            per.step(&ra, &ga, 0.1);
            let nb = flat.step_clipped(&rb, grads(&b), 0.1, 2.0);
            assert!((na - nb).abs() < 1e-5, "step {step}: norm {na} vs {nb}");
            for (x, y) in a.iter().zip(&b) {
                let d = (&x.tensor - &y.tensor).abs().max().double_value(&[]);
                assert!(d < 1e-6, "step {step}, {}: differs by {d}", x.key);
            }
        }
        assert_eq!(flat.t, 4);
        assert!(
            holder.equal(&b[0].tensor),
            "a holder of the tensor sees the update"
        );
        let (ma, va) = per.moments();
        let (mb, vb) = flat.moments();
        for (x, y) in ma.iter().chain(va).zip(mb.iter().chain(vb)) {
            assert!((x - y).abs().max().double_value(&[]) < 1e-6);
        }
        // p0 and p3 (decay / no decay) are packed; p2 had no gradient at the first step.
        let groups = flat.flat.as_ref().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].members, [0]);
        assert_eq!(groups[1].members, [1, 3]);
        assert_eq!(groups[1].w.numel(), 2 + 4);
    }

    #[test]
    fn small_gradients_are_not_clipped_and_undefined_ones_are_skipped() {
        let mut grads = vec![Tensor::from_slice(&[0.3f32, 0.4]), Tensor::new()];
        let norm = clip_grad_norm(&mut grads, 1.0);
        assert!((norm - 0.5).abs() < 1e-6);
        assert_eq!(floats(&grads[0]), [0.3f32 as f64, 0.4f32 as f64]);
        assert_eq!(clip_grad_norm(&mut [Tensor::new()], 1.0), 0.0);
    }

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let s = CosineSchedule::new(1e-3, 100, 0.03);
        assert_eq!(s.warmup, 3);
        assert!((s.lr(0) - 1e-3 / 3.0).abs() < 1e-12);
        assert!((s.lr(2) - 1e-3).abs() < 1e-12);
        assert!((s.lr(3) - 1e-3).abs() < 1e-12);
        assert!(s.lr(50) < s.lr(10));
        assert!(s.lr(99) < 1e-5);
    }
}
