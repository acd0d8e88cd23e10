//! AdamW over the trainable tensors (as `torch.optim.AdamW`), the cosine learning-rate
//! schedule with linear warmup, and gradient clipping by global norm.

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
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    scratch: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments for `params` (the trainable tensors, in a fixed order).
    pub fn new(cfg: AdamWConfig, params: &[&Param]) -> Self {
        let zeros = || params.iter().map(|p| p.tensor.zeros_like()).collect();
        Self {
            cfg,
            t: 0,
            m: zeros(),
            v: zeros(),
            scratch: zeros(),
        }
    }

    /// First and second moments, in the order of the trainable tensors.
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

    /// One update with learning rate `lr` from `grads` (one per tensor of `params`, in the
    /// same order; undefined ones leave their tensor alone), as `torch.optim.AdamW`:
    /// `w ← w(1 − lr·λ) − lr/(1−β₁ᵗ) · m / (√(v/(1−β₂ᵗ)) + ε)`. Every operation is in
    /// place on the parameters, moments and scratch tensors.
    pub fn step(&mut self, params: &[&Param], grads: &[Tensor], lr: f64) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.t as i32)).sqrt();
        // m / (√v/√bc2 + ε) = √bc2 · m / (√v + ε√bc2)
        let step_size = lr / bc1 * bc2_sqrt;
        let eps = c.eps * bc2_sqrt;
        let state = self.m.iter_mut().zip(&mut self.v).zip(&mut self.scratch);
        for ((p, g), ((m, v), buf)) in params.iter().zip(grads).zip(state) {
            if !g.defined() {
                continue;
            }
            let mut w = p.tensor.shallow_clone();
            if p.decay && c.weight_decay > 0.0 {
                let _ = w.g_mul_scalar_(1.0 - lr * c.weight_decay);
            }
            let _ = m.lerp_(g, 1.0 - c.beta1);
            let _ = g.mul_out(buf, g);
            let _ = v.lerp_(buf, 1.0 - c.beta2);
            let _ = v.sqrt_out(buf);
            let _ = buf.g_add_scalar_(eps);
            let _ = m.div_out(buf, buf);
            let _ = buf.g_mul_scalar_(-step_size);
            let _ = w.g_add_(buf);
        }
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
