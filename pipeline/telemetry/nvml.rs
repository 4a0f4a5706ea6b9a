//! `evalwatch gpu sample`: per-GPU utilisation, memory and power from NVML on a self-hosted GPU
//! machine, at an interval, written as a telemetry CSV that the `file` source reads.
//!
//! The model of each GPU comes from `--model`, or else from `[telemetry] gpu-models` (by GPU
//! index), or else from the name of the first process computing on it (`/proc/<pid>/comm`), or
//! else `gpu<index>`; its instance type from `[cost.models]` when the model has an entry. NVML is loaded at run time
//! (nvml-wrapper), so the binary builds and runs anywhere; without a driver the command fails
//! with one line and a hint. [`to_sample`] and [`write_csv`] are pure and tested without a GPU.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Sample;
use super::file::COLUMNS;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "cannot load NVML (libnvidia-ml.so): {0}; hint: `gpu sample` needs an NVIDIA driver on \
         this machine; elsewhere use the `cloudwatch` or `file` telemetry source"
    )]
    NoNvml(String),
    #[error("NVML: {0}")]
    Query(String),
    #[error("cannot write `{path}`: {message}")]
    Write { path: String, message: String },
}

/// What NVML says about one GPU at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub index: u32,
    pub util_pct: u32,
    pub mem_used_bytes: u64,
    pub mem_total_bytes: u64,
    pub power_mw: Option<u32>,
    /// Name of the first process computing on the GPU.
    pub process: Option<String>,
}

/// How `gpu sample` names what each GPU serves.
#[derive(Debug, Clone, Default)]
pub struct GpuModels {
    /// `--model`: every GPU serves this one.
    pub all: Option<String>,
    /// `[telemetry] gpu-models`: by GPU index.
    pub by_index: std::collections::BTreeMap<u32, String>,
    /// Model -> instance type, from `[cost.models]`.
    pub instance_types: std::collections::BTreeMap<String, String>,
}

impl GpuModels {
    /// The model GPU `reading.index` serves: `--model`, the config's entry for the index, the
    /// process on it, or `gpu<index>`.
    pub fn model_of(&self, reading: &Reading) -> String {
        self.all
            .clone()
            .or_else(|| self.by_index.get(&reading.index).cloned())
            .or_else(|| reading.process.clone())
            .unwrap_or_else(|| format!("gpu{}", reading.index))
    }
}

/// A reading as a telemetry sample (one GPU allocated, memory as a percentage).
pub fn to_sample(reading: &Reading, ts: DateTime<Utc>, models: &GpuModels, period: f64) -> Sample {
    let model = models.model_of(reading);
    let mem_pct = (reading.mem_total_bytes > 0)
        .then(|| reading.mem_used_bytes as f64 / reading.mem_total_bytes as f64 * 100.0);
    Sample {
        ts,
        instance_type: models.instance_types.get(&model).cloned(),
        model,
        gpu_util_pct: Some(f64::from(reading.util_pct)),
        gpu_mem_pct: mem_pct,
        gpus_allocated: Some(1.0),
        period_seconds: Some(period),
        power_w: reading.power_mw.map(|mw| f64::from(mw) / 1000.0),
        gpu: Some(reading.index.to_string()),
        ..Sample::default()
    }
}

/// Writes samples as a telemetry CSV (the `file` source's format).
pub fn write_csv(samples: &[Sample], out: &mut impl Write) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(COLUMNS)?;
    let number = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
    for s in samples {
        writer.write_record([
            s.ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            s.model.clone(),
            number(s.gpu_util_pct),
            number(s.gpu_mem_pct),
            number(s.cpu_util_pct),
            number(s.invocations),
            number(s.errors_5xx),
            number(s.model_latency_ms),
            number(s.gpus_allocated),
            s.instance_type.clone().unwrap_or_default(),
            number(s.period_seconds),
            number(s.power_w),
            s.gpu.clone().unwrap_or_default(),
        ])?;
    }
    writer.flush()
}

fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Samples every GPU every `interval` for `duration`, into a CSV at `out`.
pub fn sample(
    interval: Duration,
    duration: Duration,
    models: &GpuModels,
    out: &Path,
) -> Result<u64, GpuError> {
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| GpuError::NoNvml(e.to_string()))?;
    let query = |e: nvml_wrapper::error::NvmlError| GpuError::Query(e.to_string());
    let count = nvml.device_count().map_err(query)?;
    let mut samples = Vec::new();
    let started = std::time::Instant::now();
    loop {
        let ts = Utc::now();
        for index in 0..count {
            let device = nvml.device_by_index(index).map_err(query)?;
            let util = device.utilization_rates().map_err(query)?;
            let memory = device.memory_info().map_err(query)?;
            let process = device
                .running_compute_processes()
                .ok()
                .and_then(|p| p.first().and_then(|p| process_name(p.pid)));
            let reading = Reading {
                index,
                util_pct: util.gpu,
                mem_used_bytes: memory.used,
                mem_total_bytes: memory.total,
                power_mw: device.power_usage().ok(),
                process,
            };
            samples.push(to_sample(&reading, ts, models, interval.as_secs_f64()));
        }
        if started.elapsed() + interval > duration {
            break;
        }
        std::thread::sleep(interval);
    }
    let write_fail = |e: std::io::Error| GpuError::Write {
        path: out.display().to_string(),
        message: e.to_string(),
    };
    let mut file = std::fs::File::create(out).map_err(write_fail)?;
    write_csv(&samples, &mut file).map_err(write_fail)?;
    Ok(samples.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_become_samples_that_the_file_source_reads_back() {
        let ts = DateTime::<Utc>::from_timestamp(1_790_000_000, 0).unwrap();
        let reading = Reading {
            index: 2,
            util_pct: 87,
            mem_used_bytes: 60 << 30,
            mem_total_bytes: 80 << 30,
            power_mw: Some(312_500),
            process: Some("vllm".into()),
        };
        let none = GpuModels::default();
        let s = to_sample(&reading, ts, &none, 1.0);
        assert_eq!(s.model, "vllm");
        assert_eq!(s.gpu_mem_pct, Some(75.0));
        assert_eq!(s.power_w, Some(312.5));
        let anonymous = Reading {
            process: None,
            ..reading.clone()
        };
        assert_eq!(to_sample(&anonymous, ts, &none, 1.0).model, "gpu2");
        // The config's entry for the GPU beats the process; `--model` beats both.
        let config = GpuModels {
            by_index: [(2, "chat-b".to_string())].into(),
            instance_types: [("chat-b".to_string(), "g6e.12xlarge".to_string())].into(),
            ..GpuModels::default()
        };
        let named = to_sample(&reading, ts, &config, 1.0);
        assert_eq!(named.model, "chat-b");
        assert_eq!(named.instance_type.as_deref(), Some("g6e.12xlarge"));
        let other_gpu = Reading {
            index: 0,
            ..reading.clone()
        };
        assert_eq!(to_sample(&other_gpu, ts, &config, 1.0).model, "vllm");
        let cli = GpuModels {
            all: Some("chat-a".into()),
            ..config
        };
        assert_eq!(to_sample(&reading, ts, &cli, 1.0).model, "chat-a");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpu.csv");
        let mut file = std::fs::File::create(&path).unwrap();
        write_csv(std::slice::from_ref(&s), &mut file).unwrap();
        drop(file);
        let read = super::super::file::read(&path).unwrap();
        assert!(read.rejected.is_empty(), "{:?}", read.rejected);
        assert_eq!(read.samples, vec![s]);
    }
}
