//! Where a model and its analyses run: the CPU or a CUDA GPU.
//!
//! A [`DeviceChoice`] is what a user asks for (`auto`, `cpu`, `cuda`, `cuda:N`);
//! [`DeviceChoice::resolve`] turns it into the `tch::Device` that exists on this machine,
//! or a clear error. Load a model there with [`crate::model::load_model_on`]; every
//! analysis then computes on [`crate::model::Classifier::device`] and moves inputs given on
//! the CPU there with [`to_model_device`]. Results come back to the CPU only to be
//! plotted, saved or read as numbers.

use crate::model::Classifier;
use anyhow::{bail, Result};
use tch::{Device, Tensor};

/// The accepted spellings, for help texts and errors.
pub const ACCEPTED: &str = "auto, cpu, cuda or cuda:N (N = 0, 1, …)";

/// The note printed when `auto` finds no GPU.
pub const NO_CUDA_NOTE: &str = "note: no CUDA device, using the CPU";

/// A device as a user asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when one is available, otherwise the CPU (with a note).
    Auto,
    /// The CPU: the default, whose results are bitwise reproducible.
    #[default]
    Cpu,
    /// CUDA device `N` (`cuda` is `cuda:0`); an error where it does not exist.
    Cuda(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceChoice::Cuda(n)),
                _ => bail!("unknown device '{s}': expected {ACCEPTED}"),
            },
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Auto => f.write_str("auto"),
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    /// The device on this machine, asking libtorch how many CUDA devices it sees. `auto`
    /// without a GPU prints [`NO_CUDA_NOTE`] to stderr.
    pub fn resolve(self) -> Result<Device> {
        let (device, note) = self.resolve_among(cuda_device_count())?;
        if let Some(note) = note {
            eprintln!("{note}");
        }
        Ok(device)
    }

    /// The device among `cuda_devices` CUDA devices, with the note to print for a
    /// fallback. Separate from [`DeviceChoice::resolve`] so that the GPU cases can be
    /// tested on a machine without one.
    pub fn resolve_among(self, cuda_devices: usize) -> Result<(Device, Option<&'static str>)> {
        match self {
            DeviceChoice::Cpu => Ok((Device::Cpu, None)),
            DeviceChoice::Auto if cuda_devices > 0 => Ok((Device::Cuda(0), None)),
            DeviceChoice::Auto => Ok((Device::Cpu, Some(NO_CUDA_NOTE))),
            DeviceChoice::Cuda(n) if n < cuda_devices => Ok((Device::Cuda(n), None)),
            DeviceChoice::Cuda(n) if cuda_devices == 0 => bail!(
                "device cuda:{n} was asked for, but libtorch sees no CUDA device on this machine \
                 (no NVIDIA GPU or driver); use --device cpu, or auto to fall back to the CPU"
            ),
            DeviceChoice::Cuda(n) => bail!(
                "device cuda:{n} was asked for, but this machine has {cuda_devices} CUDA device{} ({})",
                if cuda_devices == 1 { "" } else { "s" },
                (0..cuda_devices)
                    .map(|i| format!("cuda:{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Fails, naming the devices that exist, unless `device` is on this machine: checked before
/// tensors move there (tch panics on a device that is not).
pub fn ensure_available(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(n) => DeviceChoice::Cuda(n)
            .resolve_among(cuda_device_count())
            .map(|_| ()),
        other => bail!("gradviz runs models on the CPU or a CUDA device, not on {other:?}"),
    }
}

/// How many CUDA devices libtorch sees (0 without a GPU, driver or CUDA build).
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        tch::Cuda::device_count().max(0) as usize
    } else {
        0
    }
}

/// `cpu` or `cuda:N`: a device as provenance records and `--device` spell it.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_string(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `x` on the model's device: the one step where an analysis takes inputs given anywhere
/// (usually the CPU). No copy when it is there already.
pub fn to_model_device(model: &dyn Classifier, x: &Tensor) -> Tensor {
    x.to_device(model.device())
}
