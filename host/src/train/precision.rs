//! Training precision: fp32, or bf16 autocast with fp32 weights, gradients and optimizer
//! state (what `torch.autocast(device, dtype=torch.bfloat16)` does: matmuls, convolutions
//! and attention run in bf16, reductions, norms and the loss in fp32).
//!
//! torch-sys wraps only the CUDA on/off switch of autocast (which defaults to fp16), so the
//! region is entered through libtorch's own C++ functions `at::autocast::*`, bound by their
//! exported names. They take `c10::DeviceType` and `c10::ScalarType`, both `int8_t` enums.

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind};

/// `c10::DeviceType::CPU` / `CUDA`.
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
/// `c10::ScalarType::Half` / `Float` / `BFloat16`.
const SCALAR_HALF: i8 = 5;
const SCALAR_FLOAT: i8 = 6;
const SCALAR_BF16: i8 = 15;

fn device_type(device: Device) -> i8 {
    if device.is_cuda() {
        DEVICE_CUDA
    } else {
        DEVICE_CPU
    }
}

mod ffi {
    unsafe extern "C" {
        #[link_name = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE"]
        pub fn is_autocast_enabled(device: i8) -> bool;
        #[link_name = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb"]
        pub fn set_autocast_enabled(device: i8, enabled: bool);
        #[link_name = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE"]
        pub fn get_autocast_dtype(device: i8) -> i8;
        #[link_name = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE"]
        pub fn set_autocast_dtype(device: i8, dtype: i8);
        #[link_name = "_ZN2at8autocast17increment_nestingEv"]
        pub fn increment_nesting() -> i32;
        #[link_name = "_ZN2at8autocast17decrement_nestingEv"]
        pub fn decrement_nesting() -> i32;
        #[link_name = "_ZN2at8autocast11clear_cacheEv"]
        pub fn clear_cache();
    }
}

/// How the forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 autocast on CUDA, fp32 on the CPU (the recipe; VILA trains in bf16).
    #[default]
    Auto,
    /// Everything in fp32.
    Fp32,
    /// bf16 autocast (on the CPU too, where libtorch supports it, e.g. for tests).
    Bf16,
}

impl Precision {
    /// Whether the forward pass runs under bf16 autocast on `device`.
    pub fn autocast_on(self, device: Device) -> bool {
        match self {
            Precision::Auto => device.is_cuda(),
            Precision::Fp32 => false,
            Precision::Bf16 => true,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

impl FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Precision::Auto),
            "fp32" | "f32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?} (auto, fp32, bf16)")),
        }
    }
}

/// A bf16 autocast region on one device type; leaving it (drop) restores the previous
/// switch and dtype, and clears the cast-weight cache when the outermost region ends.
/// Autocast state is per thread, like the guard.
pub struct Autocast {
    device: i8,
    was_enabled: bool,
    was_dtype: i8,
}

impl Autocast {
    /// Enters bf16 autocast for `device`'s type.
    pub fn bf16(device: Device) -> Self {
        let device = device_type(device);
        // SAFETY: plain setters/getters of libtorch's thread-local autocast state; the
        // arguments are valid `DeviceType` / `ScalarType` values.
        unsafe {
            let was_enabled = ffi::is_autocast_enabled(device);
            let was_dtype = ffi::get_autocast_dtype(device);
            ffi::set_autocast_dtype(device, SCALAR_BF16);
            ffi::set_autocast_enabled(device, true);
            ffi::increment_nesting();
            Self {
                device,
                was_enabled,
                was_dtype,
            }
        }
    }

    /// The dtype autocast uses now for `device`'s type (`None` for one other than fp16,
    /// fp32 or bf16).
    pub fn dtype(device: Device) -> Option<Kind> {
        // SAFETY: a getter of libtorch's thread-local autocast state.
        match unsafe { ffi::get_autocast_dtype(device_type(device)) } {
            SCALAR_HALF => Some(Kind::Half),
            SCALAR_FLOAT => Some(Kind::Float),
            SCALAR_BF16 => Some(Kind::BFloat16),
            _ => None,
        }
    }

    /// Whether autocast is on for `device`'s type on this thread.
    pub fn enabled(device: Device) -> bool {
        // SAFETY: a getter of libtorch's thread-local autocast state.
        unsafe { ffi::is_autocast_enabled(device_type(device)) }
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores what `bf16` read; the nesting count was incremented there.
        unsafe {
            if ffi::decrement_nesting() == 0 {
                ffi::clear_cache();
            }
            ffi::set_autocast_enabled(self.device, self.was_enabled);
            ffi::set_autocast_dtype(self.device, self.was_dtype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Tensor;

    #[test]
    fn the_region_computes_matmuls_in_bf16_and_restores_the_state() {
        let cpu = Device::Cpu;
        let (before_on, before_dtype) = (Autocast::enabled(cpu), Autocast::dtype(cpu));
        let a = Tensor::randn([4, 8], (Kind::Float, cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, cpu));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        {
            let _g = Autocast::bf16(cpu);
            assert!(Autocast::enabled(cpu));
            assert_eq!(Autocast::dtype(cpu), Some(Kind::BFloat16));
            let y = a.matmul(&b);
            assert_eq!(y.kind(), Kind::BFloat16);
            {
                let _inner = Autocast::bf16(cpu);
                assert_eq!(a.matmul(&b).kind(), Kind::BFloat16);
            }
            assert!(
                Autocast::enabled(cpu),
                "an inner region must not end the outer one"
            );
        }
        assert_eq!(Autocast::enabled(cpu), before_on);
        assert_eq!(Autocast::dtype(cpu), before_dtype);
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
    }

    #[test]
    fn precision_parses_and_picks_autocast_by_device() {
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert_eq!("fp32".parse::<Precision>(), Ok(Precision::Fp32));
        assert!("fp8".parse::<Precision>().unwrap_err().contains("fp8"));
        assert!(!Precision::Auto.autocast_on(Device::Cpu));
        assert!(Precision::Auto.autocast_on(Device::Cuda(0)));
        assert!(Precision::Bf16.autocast_on(Device::Cpu));
        assert!(!Precision::Fp32.autocast_on(Device::Cuda(0)));
    }
}
