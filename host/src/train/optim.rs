//! AdamW over the trainable tensors (as `torch.optim.AdamW`), the cosine learning-rate
//! schedule with linear warmup, and gradient clipping by global norm.

use std::f64::consts::PI;

use tch::{Kind, Tensor};

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

/// AdamW state: first and second moments per trainable tensor.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    /// Updates taken so far.
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
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

    /// One update with learning rate `lr`; tensors without a gradient are left alone.
    pub fn step(&mut self, params: &[&Param], lr: f64) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let c = self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
            let g = p.tensor.grad();
            if !g.defined() {
                continue;
            }
            let mut w = p.tensor.shallow_clone();
            if p.decay && c.weight_decay > 0.0 {
                let _ = w.g_mul_scalar_(1.0 - lr * c.weight_decay);
            }
            let _ = m.g_mul_scalar_(c.beta1);
            let _ = m.g_add_(&(&g * (1.0 - c.beta1)));
            let _ = v.g_mul_scalar_(c.beta2);
            let _ = v.g_add_(&(&g * &g * (1.0 - c.beta2)));
            let denom = (&*v / bc2).sqrt() + c.eps;
            let _ = w.g_sub_(&(&*m / &denom * (lr / bc1)));
        }
    }
}

/// Zeroes (drops) the gradients of `params`.
pub fn zero_grad(params: &[&Param]) {
    for p in params {
        let mut g = p.tensor.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// Global L2 norm of the gradients; when above `max_norm` (> 0), scales them down to it
/// (as `torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(params: &[&Param], max_norm: f64) -> f64 {
    let _guard = tch::no_grad_guard();
    let grads: Vec<Tensor> = params
        .iter()
        .map(|p| p.tensor.grad())
        .filter(Tensor::defined)
        .collect();
    if grads.is_empty() {
        return 0.0;
    }
    let sq: f64 = grads
        .iter()
        .map(|g| g.square().sum(Kind::Double).double_value(&[]))
        .sum();
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for mut g in grads {
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
    use super::*;

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
