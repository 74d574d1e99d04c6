//! `--device`, shared by every subcommand that runs a model.

use anyhow::Result;
use clap::Args;
use gradviz::device::{device_name, DeviceChoice};
use gradviz::provenance::Provenance;
use gradviz::tch::Device;

#[derive(Args, Clone, Copy)]
pub struct DeviceArg {
    /// Where the model runs: cpu, cuda (= cuda:0), cuda:N, or auto (CUDA device 0 when
    /// present, else the CPU with a note). Outputs are bitwise reproducible on the CPU.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

impl DeviceArg {
    /// The device on this machine; an error for a CUDA device that does not exist.
    pub fn resolve(self) -> Result<Device> {
        self.device.resolve()
    }

    /// The device, and `record` with the device actually used as its `device` parameter
    /// (and what was asked, when that differs: `device-asked`).
    pub fn resolve_recorded(self, record: &Provenance) -> Result<(Device, Provenance)> {
        let device = self.resolve()?;
        let used = device_name(device);
        let mut record = record.clone().param("device", &used);
        if self.device.to_string() != used {
            record = record.param("device-asked", self.device);
        }
        Ok((device, record))
    }
}
